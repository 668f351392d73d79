package harness

// Start runs the program name with args, its output going to logPath, as a *Proc the
// caller must Stop. It is for programs this package has no helper for (the benchmark
// driver re-executing itself as a reference server, say).
func Start(name, logPath string, args ...string) (*Proc, error) {
	return start(name, logPath, args...)
}
