package balancer

import "golang.org/x/sys/unix"

func unixFcntl(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0) }
