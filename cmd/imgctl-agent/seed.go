package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

// runSeed serves a root image the node already holds to its peers for a
// while (after switch-root: late joiners, reboots), reporting itself to the
// coordinator as a finished node, then leaves. The file is the one the
// initramfs verified piece by piece and dmsquash-live mounted read-only; it
// is not hashed again.
func runSeed(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	file := fs.String("file", "", "the verified root image")
	manifestURL := fs.String("manifest", "", "artifact manifest URL")
	tf := registerTreeFlags(fs)
	seedFor := fs.Duration("for", 10*time.Minute, "how long to serve")
	if err := fs.Parse(args); err != nil {
		return usageErr(err.Error())
	}
	if *file == "" || *manifestURL == "" {
		return usageErr("seed needs --file and --manifest")
	}
	o, err := tf.opts("tree", 0)
	if err != nil {
		return err
	}
	m, err := getManifest(ctx, *manifestURL, 5)
	if err != nil {
		return err
	}
	return seed(ctx, *file, m, *o, *seedFor)
}

// seed serves file (the whole root image m describes) for seedFor.
func seed(ctx context.Context, file string, m *manifest, o treeOpts, seedFor time.Duration) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if size := m.Artifacts["rootfs"].Size; st.Size() != size {
		return fmt.Errorf("seed %s: %d bytes, manifest says %d", file, st.Size(), size)
	}
	// The same cut as the nodes still fetching (the coordinator checks it).
	l := loadLayout(ctx, o, m)
	n := len(l.pieces)
	h := newHolder(f, st.Size(), l.pieceSize, n, n)
	ctx, cancel := context.WithTimeout(ctx, seedFor)
	defer cancel()
	port, err := servePeers(ctx, h, o)
	if err != nil {
		return err
	}
	c := &coordinator{o: o, transfer: m.ImageDigest, pieces: n, pieceSize: l.pieceSize, peerPort: port, stripes: l.stripes}
	for ctx.Err() == nil {
		if _, err := c.join(ctx, h, 0, l.stripes[0][1]-l.stripes[0][0], nil, nil); err == nil {
			break
		}
		sleep(ctx, 5*time.Second) // the boot service may be restarting
	}
	c.reporter(ctx, h)
	<-ctx.Done()
	c.leave(context.WithoutCancel(ctx))
	return nil
}
