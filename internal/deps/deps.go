package deps

import (
	_ "github.com/diskfs/go-diskfs"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/ulikunitz/xz"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/sys/unix"
)
