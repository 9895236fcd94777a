package oldtest

// SetPickPorts makes the fixtures' starts take their ports from f, given
// the free ports they would have taken; the returned func undoes it.
func SetPickPorts(f func(free []int) []int) (undo func()) {
	pickPorts = func(n int) ([]int, error) {
		ports, err := freePorts(n)
		if err != nil {
			return nil, err
		}
		return f(ports), nil
	}
	return func() { pickPorts = freePorts }
}
