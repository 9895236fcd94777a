// Package s3test starts a real S3-compatible object store, SeaweedFS
// (`weed server -s3`), on 127.0.0.1 for tests.
//
// Invariants:
//   - One server per test binary ([Shared]), on ports picked at random, in
//     a fresh temporary directory; [Stop] (called from TestMain) stops it
//     and deletes the directory, and the server is killed with the test
//     process if that dies first (Linux: parent-death signal).
//   - Each test gets a fresh bucket ([Server.Bucket]), made and written to
//     once (the object deleted again) before the test sees it: SeaweedFS
//     grows a new bucket's volumes at its first write, and a PUT soon after
//     the bucket was made fails now and then with 500 InternalError when
//     other writes go on beside it (seaweedfs/seaweedfs#11031), which the
//     store's first write (its claim on the bucket) met under load.
//   - The weed binary is $MAILFERRY_WEED, else bin/tools/weed-<Version>/weed
//     under the module root (`make weed` builds it there). Without it the
//     test is skipped with the reason, unless MAILFERRY_REQUIRE_S3=1 (`make
//     test` sets it), then it fails.
//   - Everything is real: S3 requests go over TCP to SeaweedFS, signed
//     with the credentials of the identity it is started with.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the SeaweedFS module version the Makefile builds.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// Environment: the weed binary, and whether its absence fails tests.
const (
	BinaryEnv  = "MAILFERRY_WEED"
	RequireEnv = "MAILFERRY_REQUIRE_S3"
)

// The identity the server accepts.
const (
	AccessKey = "mailferry-test"
	SecretKey = "mailferry-test-secret-0123456789"
)

// ErrUnavailable: no weed binary here.
var ErrUnavailable = errors.New("s3test: SeaweedFS (weed) not available")

// Server is a running SeaweedFS with its S3 gateway.
type Server struct {
	Endpoint string // host:port of S3 (plain HTTP)
	Dir      string

	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

var (
	mu      sync.Mutex
	shared  *Server
	sharedE error
	buckets atomic.Int64
)

// Shared returns the test binary's server, starting it on first use; the
// test is skipped (or failed under MAILFERRY_REQUIRE_S3=1) without weed.
func Shared(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && sharedE == nil {
		shared, sharedE = start()
	}
	if sharedE != nil {
		if errors.Is(sharedE, ErrUnavailable) && os.Getenv(RequireEnv) != "1" {
			t.Skipf("%v (build it with `make weed`, or set %s; %s=1 makes this a failure)", sharedE, BinaryEnv, RequireEnv)
		}
		t.Fatal(sharedE)
	}
	return shared
}

// Stop stops the shared server, if one was started. Call it from TestMain.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		shared.stop()
		shared = nil
	}
}

// Bucket returns a bucket no other test of this binary uses, made and
// written to once (see the package doc), empty.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", os.Getpid(), buckets.Add(1))
	if err := s.ready(name, 2*time.Minute, false); err != nil {
		t.Fatalf("s3test: bucket %s: %v", name, err)
	}
	return name
}

// Binary finds the weed binary (see the package doc).
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %w", ErrUnavailable, BinaryEnv, p, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p := filepath.Join(root, "bin", "tools", "weed-"+Version, "weed")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: no %s", ErrUnavailable, p)
	}
	return p, nil
}

// moduleRoot is the directory holding go.mod, from the working directory
// (go test runs in the package's) or this source file.
func moduleRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for ; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("no go.mod above the working directory")
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

const identities = `{"identities": [{"name": "mailferry", "credentials": [{"accessKey": %q, "secretKey": %q}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}`

func start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mailferry-s3test-")
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s := &Server{Dir: dir, done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, fmt.Appendf(nil, identities, AccessKey, SecretKey), 0o600); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	p, err := freePorts(8)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(p[6])
	args := []string{"server",
		"-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + conf,
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		"-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
	}
	s.log, err = os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	// One volume per collection grown at a time, not 7: each test's bucket
	// is a collection, and with 7 volumes each the tests of both engines
	// in one binary (several hundred volumes) exhausted what the volume
	// server takes from the disk's free space (-volume.max=0), after which
	// a new bucket's first write never succeeded.
	s.cmd.Env = append(os.Environ(), "WEED_MASTER_VOLUME_GROWTH_COPY_1=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		s.log.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("s3test: start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	err = s.wait(90 * time.Second)
	if err == nil {
		err = s.warm(90 * time.Second)
	}
	if err != nil {
		tail := s.logTail()
		s.stop()
		return nil, fmt.Errorf("s3test: %w; weed's log ends with:\n%s", err, tail)
	}
	return s, nil
}

// wait waits until S3 answers HTTP (any status: an unsigned request is
// refused, which shows the gateway is up) and a volume is writable, which
// the first PUT needs; the store's own requests then work.
func (s *Server) wait(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			return errors.New("weed exited at start")
		default:
		}
		resp, err := c.Get("http://" + s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("S3 at %s did not answer within %v", s.Endpoint, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "weed.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return strings.TrimSpace(string(b))
}

func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.Dir)
}

// warm writes one object, so that SeaweedFS has grown its first volume
// (which takes seconds) before a test's first PUT, whose timeout is short.
func (s *Server) warm(limit time.Duration) error {
	return s.ready("warmup", limit, true)
}

// ready makes a bucket and writes an object to it until a write succeeds
// or limit passes; the object is deleted again unless keep.
func (s *Server) ready(bucket string, limit time.Duration, keep bool) error {
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if err == nil || minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			_, err = c.PutObject(ctx, bucket, "x", strings.NewReader("warm"), 4, minio.PutObjectOptions{})
		}
		if err == nil && !keep {
			err = c.RemoveObject(ctx, bucket, "x", minio.RemoveObjectOptions{})
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("first write: %w", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
