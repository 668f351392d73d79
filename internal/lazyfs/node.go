package lazyfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file or directory of the mount: go-fuse's loopback for the namespace, which
// changes the backing directory at once, with the data of regular files going through the
// page cache of FS instead. Every operation the loopback has and that touches file data,
// sizes or handles is overridden here; the rest (readdir, readlink, statfs, xattr reads)
// is the loopback's.
type node struct {
	*fs.LoopbackNode
	lfs *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)

	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)

	_ fs.FileFsyncdirer = dirHandle{}
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if lb, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: lb, lfs: n.lfs}
	}
	return ops
}

// path is the node's path in the backing directory.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// Lookup gives the kernel the size readers see: a size smaller than the kernel's own
// would make it drop cached pages, and pages mapped by mmap readers with them.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.lfs.patch(&out.Attr)
	}
	return ch, errno
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return n.lfs.getattr(h.c, out)
	}
	errno := n.LoopbackNode.Getattr(ctx, nil, out)
	if errno == 0 {
		n.lfs.patch(&out.Attr)
	}
	return errno
}

// Statx is left to GETATTR: the kernel falls back to it for good on ENOSYS.
func (n *node) Statx(context.Context, fs.FileHandle, uint32, uint32, *fuse.StatxOut) syscall.Errno {
	return syscall.ENOSYS
}

// Setattr changes the size in the page cache (a truncation is lost to a power cut unless
// synced) and everything else (mode, owner, times: metadata) in the backing directory.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		h, ok := fh.(*handle)
		if !ok {
			c, errno := n.lfs.open(ctx, n.path(), false)
			if errno != 0 {
				return errno
			}
			defer n.lfs.release(c)
			h = &handle{lfs: n.lfs, c: c}
		}
		if errno := n.lfs.truncate(ctx, h.c, int64(size)); errno != 0 {
			return errno
		}
		rest := *in
		rest.Valid &^= fuse.FATTR_SIZE | fuse.FATTR_FH | fuse.FATTR_LOCKOWNER
		if rest.Valid == 0 {
			return n.lfs.getattr(h.c, out)
		}
		in = &rest
	}
	errno := n.LoopbackNode.Setattr(ctx, nil, in, out)
	if errno == 0 {
		n.lfs.patch(&out.Attr)
	}
	return errno
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	c, errno := n.lfs.open(ctx, n.path(), false)
	if errno != 0 {
		return nil, 0, errno
	}
	h := &handle{lfs: n.lfs, c: c}
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.lfs.truncate(ctx, c, 0); errno != 0 {
			n.lfs.release(c)
			return nil, 0, errno
		}
	}
	// The kernel's cache is coherent with ours (every write passes through both), so it
	// may keep it from one open to the next.
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// Create makes the file in the backing directory at once (metadata), empty, and opens it
// through the page cache.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.check(ctx); errno != 0 {
		return nil, nil, 0, errno
	}
	p := filepath.Join(n.path(), name)
	_, err := os.Lstat(p)
	existed := err == nil
	ch, lfh, _, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// The loopback's own handle writes straight to the disk: close it, use ours.
	if r, ok := lfh.(fs.FileReleaser); ok {
		if errno := r.Release(ctx); errno != 0 {
			return nil, nil, 0, errno
		}
	}
	c, errno := n.lfs.open(ctx, p, !existed)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if existed && flags&syscall.O_TRUNC != 0 {
		if errno := n.lfs.truncate(ctx, c, 0); errno != 0 {
			n.lfs.release(c)
			return nil, nil, 0, errno
		}
	}
	n.lfs.patch(&out.Attr)
	return ch, &handle{lfs: n.lfs, c: c}, fuse.FOPEN_KEEP_CACHE, 0
}

// Tmpfile is not supported: an O_TMPFILE file has no name for the page cache to go by.
func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange is left to the kernel, which copies through read and write.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.check(ctx); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.lfs.patch(&out.Attr)
	}
	return ch, errno
}

// Unlink removes the name at once; the data of a file losing its last link is forgotten
// when its last handle closes.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	victim, last := lastLink(filepath.Join(n.path(), name))
	if errno := n.LoopbackNode.Unlink(ctx, name); errno != 0 {
		return errno
	}
	if last {
		n.lfs.forget(victim)
	}
	return 0
}

// Rename renames at once; a file it replaces is forgotten as by Unlink.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	var victim uint64
	last := false
	if np, ok := newParent.(*node); ok && flags&fs.RENAME_EXCHANGE == 0 {
		victim, last = lastLink(filepath.Join(np.path(), newName))
		// Renaming a file onto another link of itself removes nothing.
		if src, _ := lastLink(filepath.Join(n.path(), name)); src == victim {
			last = false
		}
	}
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if last {
		n.lfs.forget(victim)
	}
	return 0
}

// lastLink reports the inode number of the regular file at p and whether p is its last
// link.
func lastLink(p string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0, false
	}
	return st.Ino, st.Nlink <= 1
}

// The other changes to the namespace go to the backing directory at once, until the cut.

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.check(ctx); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.check(ctx); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, dev, out)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.check(ctx); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if errno := n.lfs.check(ctx); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Removexattr(ctx, attr)
}

// OpendirHandle opens a directory whose fsync costs a flush of the device (the namespace
// is always on the disk, so there is nothing else to do).
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	ds, ok := fh.(dirStream)
	if !ok {
		n.lfs.log.Error("lazyfs: the loopback's directory handle lacks a method", "type", fmt.Sprintf("%T", fh))
		return nil, 0, syscall.EIO
	}
	return dirHandle{dirStream: ds, lfs: n.lfs}, fuseFlags, 0
}

// dirStream is what go-fuse needs of an open directory.
type dirStream interface {
	fs.FileReaddirenter
	fs.FileSeekdirer
	fs.FileReleasedirer
}

type dirHandle struct {
	dirStream
	lfs *FS
}

func (d dirHandle) Fsyncdir(ctx context.Context, _ uint32) syscall.Errno {
	return d.lfs.flush(ctx, func() syscall.Errno {
		d.lfs.stats.DirSyncs++
		return 0
	})
}

// handle is an open regular file: every handle of a file shares its page cache.
type handle struct {
	lfs *FS
	c   *cached
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, errno := h.lfs.read(ctx, h.c, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := h.lfs.write(ctx, h.c, data, off); errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

// Fsync serves fsync and fdatasync alike: both make the file's data durable.
func (h *handle) Fsync(ctx context.Context, _ uint32) syscall.Errno { return h.lfs.fsync(ctx, h.c) }

// Flush (on every close) persists nothing: closing a file does not write it back.
func (h *handle) Flush(context.Context) syscall.Errno { return 0 }

func (h *handle) Release(context.Context) syscall.Errno {
	h.lfs.release(h.c)
	return 0
}

func (h *handle) Getattr(_ context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lfs.getattr(h.c, out)
}

func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return h.lfs.allocate(ctx, h.c, off, size, mode)
}
