package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Message bytes in S3-compatible object storage (Options.Objects), instead
// of pack files: each blob is one object named "blobs/<blob key>" (blobkey.go) in
// the bucket, and its blobs row has pack = objectPack. The same bytes are one
// object, whoever stores them.
//
// Invariants (the pack invariants, for objects):
//   - A transaction naming an object commits only once the object is
//     durable: its PUT succeeded (Stage, or putBlob inside the
//     transaction). A PUT that fails, or that no answer ends within the
//     timeout, fails the append with ErrNotDurable and commits nothing.
//   - Every object a committed blob row names exists. Compact deletes an
//     object only if no blob row names it, it is older than objectGrace
//     (a staged blob not yet committed is younger), and only while holding
//     the database's write lock, after having committed into object_sweeps
//     until when it may be deleting. A commit naming a staged object whose
//     PUT began before that time checks the object is still there (HEAD)
//     under the same lock, and fails with ErrNotDurable if it is not: the
//     bytes are staged again.
//   - What was stored is served byte for byte: a read checks the size and
//     the hash its key names (blobkey.go) of what the object store
//     returns.
//   - Every request is bounded in time (ObjectStorage.Timeout, plus time
//     for the bytes), and retried a bounded number of times, so a hanging
//     object store fails a login or an append instead of holding it.
//   - Only objects under "blobs/" named by a blob key are ever deleted: the
//     bucket may hold other things. And only in this store's own bucket:
//     its marker names this store (identity.go); Open refuses a bucket
//     another store uses, and Compact deletes nothing while the marker
//     does not name this store, nor while another database of this store
//     (a copy, a restore) uses the bucket, nor before this process has
//     been open epochSettle (epoch.go). Objects last modified before an
//     adoption of the bucket (AdoptBucket) are never deleted, unless the
//     admin asked for it.

// objectPack is the pack of a blobs row whose bytes are an object.
const objectPack = -1

// objectPrefix is where blobs live in the bucket.
const objectPrefix = "blobs/"

// objectGrace is how old an object no blob row names must be before
// Compact deletes it: it may be staged for a transaction not yet committed.
const objectGrace = time.Hour

// sweepHold is for how long a committed object_sweeps mark lets Compact
// delete; objectClockSkew is the clock difference tolerated between the
// processes that stage and the one that sweeps.
const (
	sweepHold       = 2 * time.Minute
	objectClockSkew = time.Minute
)

// DefaultObjectTimeout is ObjectStorage.Timeout's default.
const DefaultObjectTimeout = 30 * time.Second

// ErrObjectStorage: the object storage could not be used (down, refusing
// the credentials, no answer in time). Appends that met it fail with
// ErrNotDurable too.
var ErrObjectStorage = errors.New("store: object storage unavailable")

// ObjectStorage says where message bytes live when they are kept in
// S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage,
// SeaweedFS).
type ObjectStorage struct {
	// Endpoint is host:port.
	Endpoint string
	// Bucket is created if missing.
	Bucket string
	// Region; empty means us-east-1.
	Region    string
	AccessKey string
	SecretKey string
	// PlainHTTP talks HTTP instead of HTTPS (loopback tests only).
	PlainHTTP bool
	// Timeout bounds each request (and the wait for an answer): a PUT or
	// GET gets one more second per MiB of bytes; 0 means
	// DefaultObjectTimeout.
	Timeout time.Duration
}

// objects is a Store's object storage.
type objects struct {
	c         *minio.Client
	transport *http.Transport
	bucket    string
	endpoint  string
	timeout   time.Duration
	grace     time.Duration // objectGrace; tests make it shorter
	settle    time.Duration // epochSettle; tests make it shorter
	period    time.Duration // epochPeriod; tests make it shorter
}

// String is where the objects are: the endpoint's URL and the bucket
// (never a credential).
func (o *objects) String() string {
	return o.c.EndpointURL().Scheme + "://" + o.endpoint + "/" + o.bucket
}

// openObjects connects to the object storage and makes the bucket if it
// is missing. Its errors say in words what is wrong.
func openObjects(cfg *ObjectStorage) (*objects, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: object storage needs an endpoint (host:port) and a bucket", ErrInvalid)
	}
	if _, _, err := net.SplitHostPort(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("%w: object storage endpoint %q: want host:port", ErrInvalid, cfg.Endpoint)
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("%w: object storage bucket %q: %w", ErrInvalid, cfg.Bucket, err)
	}
	o := &objects{bucket: cfg.Bucket, endpoint: cfg.Endpoint, timeout: cfg.Timeout, grace: objectGrace,
		settle: epochSettle, period: epochPeriod}
	if o.timeout <= 0 {
		o.timeout = DefaultObjectTimeout
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	o.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: min(o.timeout, 10*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   min(o.timeout, 10*time.Second),
		ResponseHeaderTimeout: o.timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	var err error
	o.c, err = minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       !cfg.PlainHTTP,
		Transport:    o.transport,
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrObjectStorage, cfg.Endpoint, err)
	}
	ctx, cancel := o.opCtx(context.Background(), 0)
	defer cancel()
	// A listing, not HEAD: its errors come with their S3 code (a wrong
	// secret key is told from a bucket one may not use).
	err = o.probe(ctx)
	if err != nil && !cfg.PlainHTTP {
		// net/http words a plain-HTTP answer to HTTPS in untyped text: a
		// handshake of our own gives the typed TLS error instead.
		if terr := o.handshake(ctx); terr != nil {
			err = terr
		}
	}
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		o.close()
		return nil, o.fail("open bucket "+o.bucket, err)
	}
	if err != nil {
		if err := o.c.MakeBucket(ctx, o.bucket, minio.MakeBucketOptions{Region: region}); err != nil {
			if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				o.close()
				return nil, o.fail("create bucket "+o.bucket, err)
			}
		}
	}
	return o, nil
}

// handshake makes a TLS handshake with the endpoint and returns its
// error only when the endpoint does not speak TLS (a tls.RecordHeaderError:
// it answered in plain text); any other outcome is nil, for the request's
// own error to tell.
func (o *objects) handshake(ctx context.Context) error {
	host, _, _ := net.SplitHostPort(o.endpoint)
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: min(o.timeout, 10*time.Second)},
		Config:    &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host},
	}
	ctx, cancel := context.WithTimeout(ctx, min(o.timeout, 10*time.Second))
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", o.endpoint)
	if err == nil {
		c.Close()
		return nil
	}
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) {
		return err
	}
	return nil
}

// probe lists at most one blob of the bucket.
func (o *objects) probe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for info := range o.c.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: objectPrefix, MaxKeys: 1}) {
		return info.Err
	}
	return nil
}

// anyBlob returns the name of one blob in the bucket, "" if it holds none.
func (o *objects) anyBlob(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for info := range o.c.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: objectPrefix, Recursive: true}) {
		if info.Err != nil {
			return "", o.fail("list", info.Err)
		}
		if isBlobKey(strings.TrimPrefix(info.Key, objectPrefix)) {
			return info.Key, nil
		}
	}
	return "", nil
}

func (o *objects) close() { o.transport.CloseIdleConnections() }

// opCtx bounds one request carrying size bytes.
func (o *objects) opCtx(ctx context.Context, size int64) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout+time.Duration(size>>20)*time.Second)
}

// fail words err, met while doing op, for an admin.
func (o *objects) fail(op string, err error) error {
	var why string
	resp := minio.ToErrorResponse(err)
	var dnsErr *net.DNSError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		why = fmt.Sprintf("no answer within %v (the object storage hangs or is overloaded)", o.timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "nothing listens there (is the object storage running? is s3_endpoint right?)"
	case errors.As(err, &dnsErr):
		why = "the host name does not resolve"
	case errors.As(err, &recErr):
		why = "TLS failed: the endpoint may speak plain HTTP (s3_tls false) or not S3 at all"
	case resp.Code == "InvalidAccessKeyId":
		why = "the access key is unknown to the object storage (s3_access_key)"
	case resp.Code == "SignatureDoesNotMatch":
		why = "the secret key is wrong (s3_secret_key_file)"
	case resp.Code == "AccessDenied":
		why = "access denied: these credentials may not use bucket " + o.bucket
	case resp.Code == "NoSuchBucket":
		why = "bucket " + o.bucket + " does not exist"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF):
		why = "the connection was cut"
	default:
		why = "the request failed"
	}
	return fmt.Errorf("%w: %s at %s: %s: %w", ErrObjectStorage, op, o.endpoint, why, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func objectName(key string) string { return objectPrefix + key }

// put stores body as the object of key; it is durable when put returns
// nil. Its failures are ErrNotDurable.
func (o *objects) put(ctx context.Context, key string, body []byte) error {
	if len(body) == 0 {
		// No bytes, no object (and no PUT: Go's HTTP client sends an empty
		// body of a known length 0 chunked, which SeaweedFS waits on).
		return nil
	}
	ctx, cancel := o.opCtx(ctx, int64(len(body)))
	defer cancel()
	info, err := o.c.PutObject(ctx, o.bucket, objectName(key), bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		SendContentMd5:   true, // the server checks what it received
		DisableMultipart: true, // one message, one PUT: no parts left behind
	})
	if err == nil && info.Size != int64(len(body)) {
		err = fmt.Errorf("stored %d bytes of %d", info.Size, len(body))
	}
	if err != nil {
		return fmt.Errorf("store: blob %s: %w: %w", key, ErrNotDurable, o.fail("put", err))
	}
	return nil
}

// get reads the object of key, which must hold size bytes that key
// names (checkKey).
func (o *objects) get(ctx context.Context, key string, size int64) ([]byte, error) {
	if size == 0 {
		if ok, _ := checkKey(key, nil); !ok {
			return nil, fmt.Errorf("store: blob %s: 0 bytes do not have this key", key)
		}
		return []byte{}, nil
	}
	ctx, cancel := o.opCtx(ctx, size)
	defer cancel()
	obj, err := o.c.GetObject(ctx, o.bucket, objectName(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, o.fail("get "+key, err)
	}
	defer obj.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(obj, buf); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("store: blob %s: object missing from the object storage: %w", key, ErrNotFound)
		}
		return nil, o.fail("get "+key, err)
	}
	if n, _ := obj.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("store: blob %s: the object storage holds more than its %d bytes", key, size)
	}
	if ok, got := checkKey(key, buf); !ok {
		return nil, fmt.Errorf("store: blob %s: the object storage returned other bytes (%s %s)", key, keyHashName(key), got)
	}
	return buf, nil
}

// exists tells whether the object of key is there.
func (o *objects) exists(ctx context.Context, key string) (bool, error) {
	ctx, cancel := o.opCtx(ctx, 0)
	defer cancel()
	_, err := o.c.StatObject(ctx, o.bucket, objectName(key), minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return false, nil
	}
	return false, o.fail("check "+key, err)
}

// stageObject puts body as b's object, unless a committed blob row names
// it as an object already (then it is there; a sweep deleting it before
// b's transaction commits is caught by checkObjects).
func (s *Store) stageObject(b *StagedBlob, body []byte) error {
	b.pack, b.putAt = objectPack, s.now() // the database's clock (clock.go)
	var pack sql.NullInt64
	err := s.r.QueryRow(`SELECT pack FROM blobs WHERE key = ?`, b.Key).Scan(&pack)
	switch {
	case err == nil && pack.Valid && pack.Int64 == objectPack:
		return nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: stage: %w", err)
	}
	return s.objects.put(context.Background(), b.Key, body)
}
