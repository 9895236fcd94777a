package migrate

import "testing"

// Batches keep the configured bounds for a mailbox's first batchGrowEvery
// batches (a small copy is unchanged, the first messages show soon), then
// grow by one step per batchGrowEvery batches' worth, up to batchGrowMax.
func TestBatchScale(t *testing.T) {
	for _, c := range []struct{ sent, per, want int }{
		{0, 200, 1}, {1999, 200, 1}, {2000, 200, 2}, {3999, 200, 2}, {4000, 200, 3},
		{6000, 200, 4}, {1_000_000, 200, batchGrowMax},
		{19, 2, 1}, {20, 2, 2}, {60, 2, 4},
		{5, 0, 1}, // no bound given: never a division by zero
	} {
		if got := batchScale(c.sent, c.per); got != c.want {
			t.Errorf("batchScale(%d, %d) = %d, want %d", c.sent, c.per, got, c.want)
		}
	}
}
