package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"

	"mailferry/core/internal/s3test"
)

// plainS3 is an object storage without conditional writes in front of
// the real one: it drops If-None-Match and If-Match (as S3 did before
// 2024, and as some S3-compatible servers still do) and signs each
// request again; it may hold the marker's PUT back a while, as a slow
// network would.
func plainS3(t *testing.T, target string, holdMarker time.Duration) string {
	t.Helper()
	to := &url.URL{Scheme: "http", Host: target}
	px := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(to)
		out := r.Out
		out.Host = to.Host
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Match")
		out.Header.Del("Authorization")
		if out.Header.Get("Content-Encoding") == "aws-chunked" {
			// Each chunk is signed after the headers' signature: the body
			// goes on whole, signed with the headers.
			body, err := decodeAWSChunked(out.Body)
			if err != nil {
				t.Errorf("plainS3: %v", err)
			}
			sum := sha256.Sum256(body)
			out.Header.Del("Content-Encoding")
			out.Header.Del("X-Amz-Decoded-Content-Length")
			out.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
			out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			out.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		if out.Method == http.MethodPut && strings.HasSuffix(out.URL.Path, "/"+markerName) {
			time.Sleep(holdMarker)
		}
		signer.SignV4(*out, s3test.AccessKey, s3test.SecretKey, "", "us-east-1")
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: px}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// decodeAWSChunked reads a body in aws-chunked encoding ("<hex size>;
// chunk-signature=...\r\n<bytes>\r\n", ending with a chunk of size 0).
func decodeAWSChunked(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var out []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 {
			return out, nil
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk[:n]...)
	}
}

// Stores of different databases opening one new bucket at once on an
// object storage without conditional writes, one of them slower to put
// its marker: one opens the bucket, the others are refused, and the
// marker names the one that opened. With the marker's put and read back
// alone, the slow store overwrote the first one's marker after the first
// had read back its own: both opened the bucket, and each would delete
// the other's mail.
func TestNewBucketOneStoreWinsWithoutConditionalPut(t *testing.T) {
	srv := s3test.Shared(t)
	for round := range 3 {
		var endpoints [3]string
		for i := range endpoints {
			endpoints[i] = plainS3(t, srv.Endpoint, time.Duration(i)*700*time.Millisecond)
		}
		oneStoreWins(t, srv, round, func(i int) string { return endpoints[i] })
	}
}

// The proxy above is what it claims: the object storage behind it keeps
// the conditional write it drops (else the test above tests nothing new).
func TestPlainS3DropsConditions(t *testing.T) {
	engineFree(t)
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	newBucketView(t, srv, bucket)
	o, err := openObjects(s3Options(plainS3(t, srv.Endpoint, 0), bucket))
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	for i, want := range []bool{true, true} {
		written, err := o.writeMarker(context.Background(), []byte("mailferry-store: "+strings.Repeat(strconv.Itoa(i), 32)+"\n"))
		if err != nil || written != want {
			t.Fatalf("write %d through the plain proxy: written %v, %v; want %v", i, written, err, want)
		}
	}
	// What the object storage itself does with If-None-Match: *.
	direct, err := openObjects(s3Options(srv.Endpoint, srv.Bucket(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.close()
	var got []bool
	for i := range 2 {
		written, err := direct.writeMarker(context.Background(), []byte("mailferry-store: "+strings.Repeat(strconv.Itoa(i), 32)+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, written)
	}
	t.Logf("the test object storage, asked for two conditional writes of one name: written %v", got)
}
