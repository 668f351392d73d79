package fsyncrate

import (
	"os"
	"syscall"
)

func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// fsMagic maps statfs(2) f_type values to names (linux/magic.h). The field is 32 bits wide
// on 32-bit ARM, so the magic numbers are compared as uint32.
var fsMagic = map[uint32]string{
	0xEF53:     "ext4", // also ext2 and ext3
	0x01021994: "tmpfs",
	0x794c7630: "overlayfs",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x4d44:     "vfat",
	0x5346544e: "ntfs",
	0x65735546: "fuse",
	0x2011BAB0: "exfat",
	0xF2F52010: "f2fs",
	0x6969:     "nfs",
	0x858458f6: "ramfs",
	0x2FC12FC1: "zfs",
}

func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	if name, ok := fsMagic[uint32(st.Type)]; ok {
		return name
	}
	return "unknown"
}
