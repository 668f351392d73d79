/*
Package lazyfs is a filesystem for tests that can lose power, after Jepsen's LazyFS: a FUSE
passthrough over a backing directory that keeps every write not yet synced in memory, as a
kernel's page cache does, and applies it to the backing files only on fsync or fdatasync.
Cut drops what was never synced, so a program killed and started again on the same
directory finds what a machine finds after a power cut, not what a kill -9 leaves (the
kernel keeps the page cache through a kill).

# The model

The backing directory is the disk. For each regular file the page cache holds the pages
written since the last sync (4 KiB, PageSize), the file's size, and any truncation not yet
synced. Readers of the mount see the cache over the disk; the disk changes only when:

  - a file is synced (fsync and fdatasync alike): its pages, size and truncation are
    written to its backing file;
  - the filesystem is unmounted without a cut (an orderly shutdown writes everything back);
  - Cut keeps part of the unsynced data, as asked: a prefix of the latest write ending on a
    512-byte sector boundary inside it (Cut.Tear: the write the device was doing when the
    power went), and any share of the other dirty pages, whole (Cut.Writeback: pages the
    kernel had written back on its own).

Closing a file persists nothing; a file with unsynced data keeps it after its last close,
until a sync, an unmount or a cut. After Cut every change and every sync fails with EIO;
unmount, then Mount again to "reboot".

Metadata is not cached: creating, renaming, linking and unlinking files, directories,
modes, owners and times reach the backing directory at once, as on a journalling
filesystem whose journal commits before anything else. A new file is on the disk at once,
empty. Only data and sizes are lost.

A directory fsync costs a device flush and nothing else. Options.FsyncDelay makes every
flush take that long, one at a time, before anything reaches the disk, as on a slow device
(an SD card takes milliseconds): a cut meanwhile loses what was being flushed.
The backing files themselves are never fsynced: they are the disk of the simulation, not
the host's.

# What bbolt needs, and how it is served

Reads, writes (pwrite), ftruncate, fallocate (mode 0 grows the file; FALLOC_FL_KEEP_SIZE
is accepted and does nothing), fsync and fdatasync go through the page cache. bbolt maps
its file read-only and shared and writes it with pwrite: without FUSE's writeback caching
(which go-fuse never asks for) the kernel sends every write to this filesystem before
write(2) returns and updates its own page cache, which the mapping shows, so a mapping sees
every write at once; pages it does not have it reads from here, which answers with the
cache over the disk. The kernel's cache is kept across opens (the two always agree) and
is not dropped when mtime changes, and every size given to the kernel (lookup, getattr)
is the cache's, since a smaller one would make the kernel truncate its cache under a
mapping. flock and POSIX locks are not passed to this filesystem: the kernel keeps them
itself, which excludes processes on this machine as on a disk. fsync answers
fdatasync too.

# Caveats

Unsynced data is unbounded in memory: a program that writes gigabytes without a sync makes
this process hold them.

After Cut the kernel may still serve cached pages to a program that keeps running: kill
every program using the mount first, then Cut, then Unmount, so nothing survives that the
disk does not hold.

A process must not map a file of a mount it serves itself: a page fault on the mapping
blocks a thread of the same Go runtime that must answer it, and a garbage collection
then waits forever. Read and write through system calls there, and run mapping programs
(bbolt) in another process.

O_TMPFILE is not supported (EOPNOTSUPP), nor statx (the kernel falls back to getattr), nor
copy_file_range (the kernel copies through read and write). The backing directory must be
one filesystem: files are told apart by inode number.

A mount whose serving process dies stays mounted but dead ("transport endpoint is not
connected") until `fusermount3 -u` or `umount` removes it.
*/
package lazyfs
