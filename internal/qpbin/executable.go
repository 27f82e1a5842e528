package qpbin

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// CheckExecutable tells whether path can run as a queue-proxy: the node binds it into pods
// whose root holds nothing else, so it must need no program interpreter (no libc, no
// dynamic loader). A gantry built with cgo would otherwise start every pod's queue-proxy
// with "exec /gantry: no such file or directory", which names neither cause nor fix.
func CheckExecutable(path string) error {
	f, err := elf.Open(path)
	var format *elf.FormatError
	if errors.As(err, &format) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the binary %s, which queue-proxies run from: not an ELF executable", path)
	}
	if err != nil {
		return fmt.Errorf("the binary %s, which queue-proxies run from: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("the binary %s, which queue-proxies run from: not an executable (%s)", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("the binary " + path + ", which queue-proxies run from, is dynamically linked; they run it " +
				"inside pods, which have no system libraries: build it with CGO_ENABLED=0 (make build does)")
		}
	}
	return nil
}
