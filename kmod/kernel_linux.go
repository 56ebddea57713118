package kmod

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Kernel is the one place modules enter the kernel; tests replace it.
// Errors are the kernel's errno (unix.Errno), unwrapped.
type Kernel interface {
	// FinitModule loads the module in the open file fd (finit_module(2)).
	FinitModule(fd int, params string, flags int) error
	// InitModule loads a module image from memory (init_module(2)).
	InitModule(image []byte, params string) error
}

// SystemKernel is the running kernel.
type SystemKernel struct{}

var _ Kernel = SystemKernel{}

// FinitModule calls finit_module(2).
func (SystemKernel) FinitModule(fd int, params string, flags int) error {
	return unix.FinitModule(fd, params, flags)
}

// InitModule calls init_module(2).
func (SystemKernel) InitModule(image []byte, params string) error {
	return unix.InitModule(image, params)
}

// kernelRelease is uname -r.
func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
