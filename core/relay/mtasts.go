package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailferry/core/store"
)

// MTA-STS (RFC 8461): a recipient domain that publishes a policy (a TXT
// record at _mta-sts.<domain> naming the policy's id, the policy itself at
// https://mta-sts.<domain>/.well-known/mta-sts.txt) tells senders which
// mail exchangers are its own and that they speak verified TLS. Policies
// are cached per domain until max_age runs out and fetched again only when
// the TXT record names another id; they are kept in the store too, so a
// restart does not forget them (RFC 8461 section 5.1). In enforce mode
// mail goes only to a listed exchanger over TLS whose certificate verifies for the exchanger's
// name, else it waits (a temporary failure); in testing mode failures are
// only logged.

// STS policy modes.
const (
	stsEnforce = "enforce"
	stsTesting = "testing"
	stsNone    = "none"
)

// stsMaxAge caps a policy's max_age (RFC 8461 section 3.2: one year).
const stsMaxAge = 31557600 * time.Second

// stsMaxBody bounds a policy file (RFC 8461 section 3.3 suggests 64 KiB).
const stsMaxBody = 64 << 10

// errSTS is wrapped by the reasons a policy is not usable.
var errSTS = errors.New("relay: MTA-STS")

// stsPolicy is a domain's MTA-STS policy.
type stsPolicy struct {
	id      string
	mode    string
	mx      []string // patterns: "mx.example.org" or "*.example.org"
	expires time.Time
	raw     string // the policy file, as kept in the store
}

// matches reports whether mail exchanger host (no trailing dot) is one of
// the policy's (RFC 8461 section 4.1: a wildcard stands for exactly one
// leftmost label).
func (p *stsPolicy) matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.mx {
		pat = strings.ToLower(pat)
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// stsCache fetches and keeps the policies of recipient domains.
type stsCache struct {
	r      *Relay
	client *http.Client

	mu sync.Mutex
	m  map[string]*stsPolicy
}

func newSTSCache(r *Relay) *stsCache {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if r.opts.MTASTSPort > 0 {
				port = strconv.Itoa(r.opts.MTASTSPort)
			}
			d := net.Dialer{Resolver: r.resolver}
			return d.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
		TLSClientConfig:     &tls.Config{RootCAs: r.opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &stsCache{r: r, m: map[string]*stsPolicy{}, client: &http.Client{
		Transport: tr,
		Timeout:   time.Minute,
		// RFC 8461 section 3.3: redirects are not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *stsCache) close() { c.client.CloseIdleConnections() }

// policy returns domain's MTA-STS policy, nil when it has none (or none
// could be had and none is cached: mail then goes with opportunistic TLS,
// RFC 8461 section 5.1).
func (c *stsCache) policy(ctx context.Context, domain string) *stsPolicy {
	log := c.r.log.With("domain", domain)
	c.mu.Lock()
	cached := c.m[domain]
	c.mu.Unlock()
	if cached == nil {
		cached = c.load(ctx, domain)
	}
	if cached != nil && time.Now().After(cached.expires) {
		cached = nil
	}
	id, err := c.txtID(ctx, domain)
	if err != nil {
		if cached == nil && !notFound(err) {
			log.Info("MTA-STS: no usable TXT record", "err", err)
		}
		return cached
	}
	if cached != nil && cached.id == id {
		return cached
	}
	p, err := c.fetch(ctx, domain)
	if err != nil {
		log.Warn("MTA-STS: policy not fetched", "err", err)
		return cached
	}
	p.id = id
	if p.mode == stsNone {
		c.mu.Lock()
		delete(c.m, domain)
		c.mu.Unlock()
		if err := c.r.st.DeleteMTASTSPolicy(ctx, domain); err != nil {
			log.Warn("MTA-STS: forget the kept policy", "err", err)
		}
		return nil
	}
	c.mu.Lock()
	c.m[domain] = p
	c.mu.Unlock()
	if err := c.r.st.SetMTASTSPolicy(ctx, domain, store.MTASTSPolicy{ID: p.id, Policy: p.raw, Expires: p.expires}); err != nil {
		// Kept in memory still; only a restart would forget it.
		log.Warn("MTA-STS: keep the policy", "err", err)
	}
	log.Info("MTA-STS policy", "id", p.id, "mode", p.mode, "mx", p.mx)
	return p
}

// load returns domain's policy as the store kept it (RFC 8461 section 5.1:
// a policy outlives a restart until it expires), nil when none is kept.
func (c *stsCache) load(ctx context.Context, domain string) *stsPolicy {
	kept, err := c.r.st.MTASTSPolicyOf(ctx, domain)
	if err != nil || kept == nil {
		if err != nil {
			c.r.log.Warn("MTA-STS: read the kept policy", "domain", domain, "err", err)
		}
		return nil
	}
	p, err := parseSTSPolicy([]byte(kept.Policy))
	if err != nil {
		c.r.log.Warn("MTA-STS: the kept policy does not parse", "domain", domain, "err", err)
		return nil
	}
	p.id, p.expires = kept.ID, kept.Expires
	c.mu.Lock()
	if c.m[domain] == nil {
		c.m[domain] = p
	}
	c.mu.Unlock()
	return p
}

// txtID reads the id of _mta-sts.<domain>'s one "v=STSv1" TXT record
// (RFC 8461 section 3.1).
func (c *stsCache) txtID(ctx context.Context, domain string) (string, error) {
	txts, err := c.r.resolver.LookupTXT(ctx, fqdn("_mta-sts."+domain))
	if err != nil {
		return "", err
	}
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") || t == "v=STSv1" {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return "", fmt.Errorf("%w: %d v=STSv1 TXT records at _mta-sts.%s", errSTS, len(recs), domain)
	}
	for _, f := range strings.Split(recs[0], ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		if k == "id" && v != "" && len(v) <= 32 && isAlnum(v) {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: TXT record at _mta-sts.%s has no valid id", errSTS, domain)
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// fetch gets and parses the policy of domain over HTTPS (RFC 8461 section
// 3.3: the certificate must verify for mta-sts.<domain>, no redirects, a
// 200 with text/plain).
func (c *stsCache) fetch(ctx context.Context, domain string) (*stsPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", errSTS, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetch %s: HTTP status %d", errSTS, url, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("%w: %s: content type %q, want text/plain", errSTS, url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", errSTS, url, err)
	}
	if len(body) > stsMaxBody {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", errSTS, url, stsMaxBody)
	}
	p, err := parseSTSPolicy(body)
	if err != nil {
		return nil, err
	}
	p.raw = string(body)
	return p, nil
}

// parseSTSPolicy parses a policy file (RFC 8461 section 3.2).
func parseSTSPolicy(b []byte) (*stsPolicy, error) {
	p := &stsPolicy{}
	var version string
	maxAge := -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: policy line %q is not key: value", errSTS, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			p.mode = v
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || len(v) > 10 {
				return nil, fmt.Errorf("%w: policy max_age %q", errSTS, v)
			}
			maxAge = n
		case "mx":
			p.mx = append(p.mx, v)
		}
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("%w: policy version %q, want STSv1", errSTS, version)
	case p.mode != stsEnforce && p.mode != stsTesting && p.mode != stsNone:
		return nil, fmt.Errorf("%w: policy mode %q", errSTS, p.mode)
	case maxAge < 0:
		return nil, fmt.Errorf("%w: policy without max_age", errSTS)
	case p.mode != stsNone && len(p.mx) == 0:
		return nil, fmt.Errorf("%w: policy without mx", errSTS)
	}
	p.expires = time.Now().Add(min(time.Duration(maxAge)*time.Second, stsMaxAge))
	return p, nil
}
