package imapfront_test

import (
	"log"
	"net"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

// ExampleNew wires the IMAP front end to a store: the store keeps each
// message's ENVELOPE and BODYSTRUCTURE (Summarize) so FETCH never parses.
func ExampleNew() {
	st, err := store.Open("/var/lib/mailferry/mail.db", &store.Options{Summarize: imapfront.Summarize})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	tlsConfig, err := imapfront.SelfSignedTLS("/var/lib/mailferry/tls", []string{"mail.example.test"})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := imapfront.New(&imapfront.Options{Store: st, TLSConfig: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ln143, err := net.Listen("tcp", ":143")
	if err != nil {
		log.Fatal(err)
	}
	ln993, err := net.Listen("tcp", ":993")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln143)    // STARTTLS
	go srv.ServeTLS(ln993) // implicit TLS, RFC 8314
	select {}
}
