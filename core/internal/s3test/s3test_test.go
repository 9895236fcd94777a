package s3test

import (
	"path/filepath"
	"testing"
)

// TestBucketsGrowOneVolumeEach: each test's bucket is a SeaweedFS
// collection; SeaweedFS grows 7 volumes for a new one by default, and a
// store package run with both engines (a few dozen buckets) then asked
// for more volumes than the volume server takes from a disk with 15 GB
// free: every later bucket's first write failed after its 2 minutes.
func TestBucketsGrowOneVolumeEach(t *testing.T) {
	s := Shared(t)
	defer Stop()
	count := func() int {
		m, err := filepath.Glob(filepath.Join(s.Dir, "data", "*.dat"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	before := count()
	const n = 3
	for i := 0; i < n; i++ {
		s.Bucket(t)
	}
	if grown := count() - before; grown > n {
		t.Fatalf("%d buckets grew %d volumes; want at most one each", n, grown)
	}
}
