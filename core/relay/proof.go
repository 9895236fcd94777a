package relay

import (
	"context"
	"fmt"
	"strings"
)

// DeliveryError is why a message Deliver sent was not accepted: the
// server's reply or what stopped the attempt.
type DeliveryError struct {
	// Permanent is set when a server refused the message for good (5xx,
	// a null MX, a domain that does not exist); otherwise the failure was
	// temporary (no server reached, a 4xx, TLS required and refused).
	Permanent bool
	// Status is the enhanced status code (RFC 3463), Remote the server
	// that answered ("" when none did), Detail its reply or the error.
	Status, Remote, Detail string
}

func (e *DeliveryError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	s := fmt.Sprintf("relay: not delivered (%s failure, %s)", kind, e.Status)
	if e.Remote != "" {
		s += " by " + e.Remote
	}
	return s + ": " + e.Detail
}

// Deliver sends one message from the local domain now, through rt
// (RouteMX or RouteSmarthost), outside the queue: nothing is retried and
// no DSN is made. It is how an admin proves a route before the old server
// goes away. The message is signed (Options.Sign) as queued mail is. It
// returns the server that accepted the message (its 250 to DATA), or a
// *DeliveryError.
func (r *Relay) Deliver(ctx context.Context, domain string, rt Route, from, rcpt string, body []byte) (remote string, err error) {
	if err := rt.Validate(); err != nil {
		return "", err
	}
	rt = rt.WithDefaults()
	if rt.Kind != RouteMX && rt.Kind != RouteSmarthost {
		return "", fmt.Errorf("%w: only direct delivery (mx) or a smarthost can be tested, not %q", ErrRoute, rt.Kind)
	}
	if !strings.Contains(rcpt, "@") || rcptDomain(rcpt) == "" {
		return "", fmt.Errorf("relay: recipient %q is not an address", clipAddr(rcpt))
	}
	signed, err := r.sign(domain, body)
	if err != nil {
		return "", err
	}
	var final []outcome
	commit := func(done []outcome) bool {
		final = append(final, done...)
		return true
	}
	var temps []outcome
	switch rt.Kind {
	case RouteMX:
		temps, _ = r.deliverMX(ctx, rcptDomain(rcpt), from, []string{rcpt}, signed, commit)
	default:
		outs, release := r.transact(ctx, r.smartTarget(rt), from, []string{rcpt}, signed)
		temps, _ = settle(outs, release, commit)
	}
	switch {
	case len(final) > 0 && !final[0].perm:
		r.log.Info("test message delivered", "domain", domain, "route", rt, "rcpt", rcpt, "remote", final[0].remote)
		return final[0].remote, nil
	case len(final) > 0:
		o := final[0]
		return "", &DeliveryError{Permanent: true, Status: o.status, Remote: o.remote, Detail: o.detail}
	case len(temps) > 0:
		o := temps[0]
		return "", &DeliveryError{Status: o.status, Remote: o.remote, Detail: o.detail}
	}
	return "", &DeliveryError{Status: "4.0.0", Detail: "no attempt was made"}
}
