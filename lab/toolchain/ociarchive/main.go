// ociarchive writes a one-binary container image as a tar archive that `ctr images import`
// (containerd 1.x/2.x), `docker load` and `podman load` accept:
//
//	ociarchive -ref registry.k8s.io/pause:3.10.1 -bin ./pause -entrypoint /pause -user 65535:65535 -out pause.tar
//
// The image (linux/amd64, OCI media types) has a single gzip layer holding the binary at
// /<basename> (root:root, mode 0755, optionally with file capabilities, -cap), and a config with
// Entrypoint, User, WorkingDir "/", PATH and the given labels. The archive is an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) whose index.json names the manifest with the
// annotations `io.containerd.image.name` (the full reference) and `org.opencontainers.image.ref.name`
// (the tag); a Docker `manifest.json` with RepoTags is added for `docker load`. Everything is
// reproducible: all timestamps are -created.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		ref     = flag.String("ref", "", "full image reference the archive is tagged with (registry/repo:tag)")
		bin     = flag.String("bin", "", "the binary to put at /<basename of -name or -bin>")
		binName = flag.String("name", "", "file name in the image (default: basename of -bin)")
		out     = flag.String("out", "", "archive to write")
		user    = flag.String("user", "", "config User (uid[:gid])")
		workdir = flag.String("workdir", "/", "config WorkingDir")
		created = flag.String("created", "1970-01-01T00:00:00Z", "RFC 3339 time for the image, its history and file times")
		caps    = flag.String("cap", "", "comma-separated file capabilities set permitted+effective on the binary (e.g. net_bind_service)")
		entry   multi
		labels  multi
	)
	flag.Var(&entry, "entrypoint", "entrypoint element (repeat for more; default: /<name>)")
	flag.Var(&labels, "label", "config label key=value (repeatable)")
	flag.Parse()
	if *ref == "" || *bin == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*ref, *bin, *binName, *out, *user, *workdir, *created, *caps, entry, labels); err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		os.Exit(1)
	}
}

func run(ref, bin, binName, out, user, workdir, createdS, caps string, entry, labelKV []string) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-ref %q: %w (want registry/repository:tag)", ref, err)
	}
	created, err := time.Parse(time.RFC3339, createdS)
	if err != nil {
		return fmt.Errorf("-created: %w", err)
	}
	created = created.UTC()
	if binName == "" {
		binName = filepath.Base(bin)
	}
	if len(entry) == 0 {
		entry = []string{"/" + binName}
	}
	labels := map[string]string{}
	for _, kv := range labelKV {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q: want key=value", kv)
		}
		labels[k] = v
	}
	var capData []byte
	if caps != "" {
		if capData, err = vfsCapData(caps); err != nil {
			return err
		}
	}

	content, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	layerTar, err := layerTar(binName, content, created, capData)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}

	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: entry,
			User:       user,
			WorkingDir: workdir,
			Env:        []string{"PATH=" + defaultPath},
			Labels:     labels,
		},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, cfg)
	if err != nil {
		return err
	}
	createdBy := fmt.Sprintf("COPY %s /%s # kubeha lab/toolchain.sh images", binName, binName)
	if capData != nil {
		createdBy += ", file capabilities " + caps + "+ep"
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: createdBy},
	})
	if err != nil {
		return err
	}
	return writeArchive(out, img, tag)
}

// layerTar: one regular file at /<name>, root-owned, 0755, with a security.capability xattr when
// capData is set (containerd applies SCHILY.xattr.* PAX records when it unpacks the layer).
func layerTar(name string, content []byte, mtime time.Time, capData []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o755,
		Size:     int64(len(content)),
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	if capData != nil {
		hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(capData)}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// capability numbers from linux/capability.h, the ones an image binary plausibly needs.
var capNumbers = map[string]uint{
	"chown": 0, "dac_override": 1, "fowner": 3, "kill": 5, "setgid": 6, "setuid": 7,
	"net_bind_service": 10, "net_broadcast": 11, "net_admin": 12, "net_raw": 13,
	"ipc_lock": 14, "sys_chroot": 18, "sys_ptrace": 19, "sys_admin": 21, "sys_resource": 24,
}

// vfsCapData: struct vfs_cap_data, revision 2 (what `setcap CAPS+ep` writes as root in the
// initial user namespace): magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, then
// {permitted, inheritable} for capabilities 0-31 and 32-63, little-endian.
func vfsCapData(list string) ([]byte, error) {
	var perm [2]uint32
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(c)), "cap_")
		n, ok := capNumbers[c]
		if !ok {
			return nil, fmt.Errorf("-cap: unknown capability %q", c)
		}
		perm[n/32] |= 1 << (n % 32)
	}
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x000001)
	binary.LittleEndian.PutUint32(b[4:], perm[0])
	binary.LittleEndian.PutUint32(b[12:], perm[1])
	return b, nil
}

type archiveFile struct {
	name string
	data []byte
}

func writeArchive(out string, img v1.Image, tag name.Tag) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mdigest, err := img.Digest()
	if err != nil {
		return err
	}
	mtype, err := img.MediaType()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cname, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

	files := []archiveFile{{blob(cname), config}, {blob(mdigest), manifest}}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		files = append(files, archiveFile{blob(d), data})
		layerPaths = append(layerPaths, blob(d))
	}

	fullRef := tag.Name() // registry.k8s.io/pause:3.10.1 (as given: no docker.io/library rewriting)
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mtype,
			Digest:    mdigest,
			Size:      int64(len(manifest)),
			Platform:  &v1.Platform{Architecture: "amd64", OS: "linux"},
			Annotations: map[string]string{
				"io.containerd.image.name":         fullRef,
				"org.opencontainers.image.ref.name": tag.TagStr(),
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	dockerManifest, err := json.Marshal([]map[string]any{{
		"Config":   blob(cname),
		"RepoTags": []string{fullRef},
		"Layers":   layerPaths,
	}})
	if err != nil {
		return err
	}
	files = append(files,
		archiveFile{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		archiveFile{"index.json", indexJSON},
		archiveFile{"manifest.json", dockerManifest},
	)
	sort.SliceStable(files, func(i, j int) bool { return order(files[i].name) < order(files[j].name) })

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0).UTC()
	dirs := []string{"blobs", "blobs/sha256"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
	}
	for _, af := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: af.name, Mode: 0o644, Size: int64(len(af.data)), ModTime: epoch, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(af.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("%s %s manifest %s\n", out, fullRef, mdigest)
	return nil
}

// order: oci-layout first (importers may read it early), blobs, then index.json and manifest.json.
func order(n string) int {
	switch {
	case n == "oci-layout":
		return 0
	case strings.HasPrefix(n, "blobs/"):
		return 1
	default:
		return 2
	}
}
