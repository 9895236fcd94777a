package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"mailferry/core/auth/addr"
	"mailferry/core/internal/privfile"
)

// Algorithm is a DKIM key type, as named in the k= tag of a key record.
type Algorithm string

// The two key types Mailferry makes for every domain.
const (
	Ed25519 Algorithm = "ed25519" // RFC 8463
	RSA     Algorithm = "rsa"     // RFC 6376, 2048 bits
)

// rsaBits is the size of the RSA keys made: 2048, the size RFC 8301 asks
// verifiers to support and every DNS provider can hold in one TXT record.
const rsaBits = 2048

// State is where a generation of keys stands in its rotation.
type State string

const (
	// Pending: made by Rotate, to be published in DNS; not yet used.
	Pending State = "pending"
	// Active: signs outbound mail.
	Active State = "active"
	// Retired: replaced by Activate; its record stays in DNS for a while
	// (Generation.KeepUntil) so mail already sent still verifies.
	Retired State = "retired"
)

// ErrInvalid is wrapped by errors about a domain or selector name that
// cannot be used.
var ErrInvalid = errors.New("dkim: invalid name")

// ErrNoPending is returned by Activate when the domain has no pending
// generation (see Rotate).
var ErrNoPending = errors.New("dkim: no pending key to activate")

// Key is one DKIM key: a selector and its private key.
type Key struct {
	// Selector is the s= tag and the first label of the key record's name.
	Selector  string
	Algorithm Algorithm
	signer    crypto.Signer
}

// Public returns the public key (ed25519.PublicKey or *rsa.PublicKey).
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// Signer returns the private key.
func (k *Key) Signer() crypto.Signer { return k.signer }

// TXT is the key record's text (RFC 6376 section 3.6.1): "v=DKIM1; k=ed25519;
// p=…" with the public key in base64 — the raw 32 bytes for Ed25519
// (RFC 8463 section 4.2), a SubjectPublicKeyInfo for RSA.
func (k *Key) TXT() string {
	var p []byte
	switch pub := k.signer.Public().(type) {
	case ed25519.PublicKey:
		p = pub
	default:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			// Unreachable: only RSA and Ed25519 keys are ever loaded.
			return "v=DKIM1; k=" + string(k.Algorithm) + "; p="
		}
		p = der
	}
	return "v=DKIM1; k=" + string(k.Algorithm) + "; p=" + base64.StdEncoding.EncodeToString(p)
}

// Generation is a pair of keys made together (Ed25519 and RSA), named by the
// month it was made.
type Generation struct {
	// Name is the selectors' common stem, e.g. "mf202612".
	Name    string
	State   State
	Created time.Time
	// Retired is when Activate replaced it (zero unless State is Retired);
	// KeepUntil is when its record may leave DNS and its files are removed.
	Retired   time.Time
	KeepUntil time.Time
	// Keys are the Ed25519 key, then the RSA key.
	Keys []*Key
}

// Options configure a Keyring; nil means all defaults.
type Options struct {
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// RetiredKeep is how long a retired generation is kept and its record
	// listed; default 30 days.
	RetiredKeep time.Duration
}

// Keyring keeps the DKIM keys of every domain in a folder (see the package
// doc). Its methods are safe for concurrent use.
type Keyring struct {
	dir  string
	now  func() time.Time
	keep time.Duration
	mu   sync.Mutex
}

// NewKeyring returns the keyring kept in dir (made on first use, mode 0700).
func NewKeyring(dir string, opts *Options) *Keyring {
	k := &Keyring{dir: dir, now: time.Now, keep: 30 * 24 * time.Hour}
	if opts != nil {
		if opts.Now != nil {
			k.now = opts.Now
		}
		if opts.RetiredKeep > 0 {
			k.keep = opts.RetiredKeep
		}
	}
	return k
}

// Dir is the keyring's folder.
func (k *Keyring) Dir() string { return k.dir }

// genState is one generation in state.json.
type genState struct {
	Name    string    `json:"name"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
}

type domainState struct {
	Generations []genState `json:"generations"`
}

// Generations returns the domain's generations, pending first, then active,
// then retired ones (newest first); none when no key was made yet.
// Retired generations past their keeping time are not listed.
func (k *Keyring) Generations(domain string) ([]*Generation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, err := k.domainDir(domain)
	if err != nil {
		return nil, err
	}
	st, err := readState(d)
	if err != nil {
		return nil, err
	}
	return k.load(d, st)
}

// Active returns the domain's active generation, making its keys when the
// domain has none yet ("on first use").
func (k *Keyring) Active(domain string) (*Generation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, err := k.domainDir(domain)
	if err != nil {
		return nil, err
	}
	st, err := readState(d)
	if err != nil {
		return nil, err
	}
	if i := st.find(Active); i >= 0 {
		return k.loadOne(d, st.Generations[i])
	}
	g, err := k.generate(d, st, Active)
	if err != nil {
		return nil, fmt.Errorf("dkim: keys for %s: %w", domain, err)
	}
	return g, nil
}

// Rotate makes a pending generation for domain, to be published in DNS and
// then made active by Activate; mail stays signed with the active one
// meanwhile. When a pending generation exists already it is returned as it
// is. A domain without keys gets an active generation first.
func (k *Keyring) Rotate(domain string) (*Generation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, err := k.domainDir(domain)
	if err != nil {
		return nil, err
	}
	st, err := readState(d)
	if err != nil {
		return nil, err
	}
	if i := st.find(Pending); i >= 0 {
		return k.loadOne(d, st.Generations[i])
	}
	if st.find(Active) < 0 {
		if _, err := k.generate(d, st, Active); err != nil {
			return nil, fmt.Errorf("dkim: keys for %s: %w", domain, err)
		}
		if st, err = readState(d); err != nil {
			return nil, err
		}
	}
	g, err := k.generate(d, st, Pending)
	if err != nil {
		return nil, fmt.Errorf("dkim: new keys for %s: %w", domain, err)
	}
	return g, nil
}

// Activate makes the domain's pending generation the active one (callers
// check first that DNS serves its records: see CheckRecords); the generation it
// replaces is retired. It returns ErrNoPending when there is none.
func (k *Keyring) Activate(domain string) (*Generation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, err := k.domainDir(domain)
	if err != nil {
		return nil, err
	}
	st, err := readState(d)
	if err != nil {
		return nil, err
	}
	p := st.find(Pending)
	if p < 0 {
		return nil, fmt.Errorf("%w for %s", ErrNoPending, domain)
	}
	now := k.now()
	for i := range st.Generations {
		if st.Generations[i].State == Active {
			st.Generations[i].State = Retired
			st.Generations[i].Retired = now
		}
	}
	st.Generations[p].State = Active
	activated := st.Generations[p] // save may prune others, moving it
	if err := k.save(d, st); err != nil {
		return nil, err
	}
	return k.loadOne(d, activated)
}

// domainDir checks the domain name and returns its folder (not made yet).
func (k *Keyring) domainDir(domain string) (string, error) {
	if k.dir == "" {
		return "", errors.New("dkim: keyring has no folder")
	}
	d, err := canonicalDomain(domain)
	if err != nil {
		return "", err
	}
	return filepath.Join(k.dir, d), nil
}

// canonicalDomain is the canonical form of a domain name (lower case,
// A-labels: addr.Domain), safe as a folder name.
func canonicalDomain(domain string) (string, error) {
	d, err := addr.Domain(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return d, nil
}

func (st *domainState) find(s State) int {
	return slices.IndexFunc(st.Generations, func(g genState) bool { return g.State == s })
}

func readState(d string) (*domainState, error) {
	b, err := os.ReadFile(filepath.Join(d, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &domainState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	var st domainState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", filepath.Join(d, "state.json"), err)
	}
	return &st, nil
}

// expired tells whether a retired generation is past its keeping time.
func (k *Keyring) expired(g genState) bool {
	return g.State == Retired && !k.now().Before(g.Retired.Add(k.keep))
}

// load returns the listed generations in display order.
func (k *Keyring) load(d string, st *domainState) ([]*Generation, error) {
	var out []*Generation
	for _, s := range []State{Pending, Active, Retired} {
		for _, g := range slices.Backward(st.Generations) {
			if g.State != s || k.expired(g) {
				continue
			}
			gen, err := k.loadOne(d, g)
			if err != nil {
				return nil, err
			}
			out = append(out, gen)
		}
	}
	return out, nil
}

func (k *Keyring) loadOne(d string, g genState) (*Generation, error) {
	gen := &Generation{Name: g.Name, State: g.State, Created: g.Created, Retired: g.Retired}
	if g.State == Retired {
		gen.KeepUntil = g.Retired.Add(k.keep)
	}
	for _, a := range []Algorithm{Ed25519, RSA} {
		sel := selector(g.Name, a)
		key, err := readKey(filepath.Join(d, sel+".pem"), a)
		if err != nil {
			return nil, err
		}
		gen.Keys = append(gen.Keys, &Key{Selector: sel, Algorithm: a, signer: key})
	}
	return gen, nil
}

// selector is a key's selector: the generation's name and a letter for the
// algorithm.
func selector(name string, a Algorithm) string {
	if a == Ed25519 {
		return name + "e"
	}
	return name + "r"
}

// generate makes a generation of keys in state s (Active: replacing none,
// the domain has no active one), records it and prunes expired ones.
func (k *Keyring) generate(d string, st *domainState, s State) (*Generation, error) {
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	// An existing folder made by hand with a looser mode is tightened.
	if err := os.Chmod(k.dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(d, 0o700); err != nil {
		return nil, err
	}
	now := k.now().UTC()
	base := "mf" + now.Format("200601")
	var gs genState
	for n := 1; ; n++ {
		name := base
		if n > 1 {
			name = base + "-" + strconv.Itoa(n)
		}
		if slices.ContainsFunc(st.Generations, func(g genState) bool { return g.Name == name }) {
			continue
		}
		err := newKeyFile(filepath.Join(d, selector(name, Ed25519)+".pem"), Ed25519)
		if err == nil {
			err = newKeyFile(filepath.Join(d, selector(name, RSA)+".pem"), RSA)
		}
		if errors.Is(err, fs.ErrExist) {
			continue // a leftover of a crash, or another process's: next name
		}
		if err != nil {
			return nil, err
		}
		gs = genState{Name: name, State: s, Created: now}
		break
	}
	st.Generations = append(st.Generations, gs)
	if err := k.save(d, st); err != nil {
		return nil, err
	}
	return k.loadOne(d, gs)
}

// save prunes expired generations (state first, then their files) and writes
// state.json atomically.
func (k *Keyring) save(d string, st *domainState) error {
	var gone []string
	st.Generations = slices.DeleteFunc(st.Generations, func(g genState) bool {
		if k.expired(g) {
			gone = append(gone, g.Name)
			return true
		}
		return false
	})
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	if err := privfile.Write(filepath.Join(d, "state.json"), b); err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	for _, name := range gone {
		for _, a := range []Algorithm{Ed25519, RSA} {
			if err := os.Remove(filepath.Join(d, selector(name, a)+".pem")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("dkim: removing a retired key: %w", err)
			}
		}
	}
	return nil
}

// newKeyFile makes a key of type a and writes it to name (mode 0600, never
// over an existing file: an error wrapping fs.ErrExist then).
func newKeyFile(name string, a Algorithm) error {
	var key crypto.Signer
	var err error
	switch a {
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		err = fmt.Errorf("unknown key type %q", a)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// readKey reads a PKCS #8 key of type a.
func readKey(name string, a Algorithm) (crypto.Signer, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("dkim: %s: no PEM private key", name)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", name, err)
	}
	switch key := key.(type) {
	case ed25519.PrivateKey:
		if a == Ed25519 {
			return key, nil
		}
	case *rsa.PrivateKey:
		if a == RSA {
			return key, nil
		}
	}
	return nil, fmt.Errorf("dkim: %s: a %T, not a %s key", name, key, a)
}
