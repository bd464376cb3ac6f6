package commandprov

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkg/sftp"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

// CopyToRemote is command:remote:CopyToRemote: a FileAsset, StringAsset or path FileArchive copied
// over SFTP. As in pulumi-command 1.2.1 only `triggers` replaces; a changed source (by hash) or
// remotePath copies again in place; delete leaves the remote file alone.
func CopyToRemote() *fw.Resource {
	return &fw.Resource{
		Token: "command:remote:CopyToRemote",
		Desc:  "Copy an Asset or Archive to a remote host.",
		Props: []fw.Prop{
			{Name: "connection", Type: "object", In: true, Required: true, Secret: true},
			{Name: "triggers", Type: "array", Items: "any", In: true, Replace: true},
			{Name: "source", Type: "asset", In: true, Required: true},
			{Name: "remotePath", Type: "string", In: true, Required: true},
		},
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			f := validateConnection(news)
			v, ok := fw.Get(news, "source")
			if !ok || fw.ContainsUnknowns(v) {
				return f
			}
			switch {
			case v.IsAsset():
				if a := v.AssetValue(); !a.IsPath() && !a.IsText() {
					f = append(f, &pulumirpc.CheckFailure{Property: "source", Reason: "asset must be a path-based file asset or a text asset"})
				}
			case v.IsArchive():
				if !v.ArchiveValue().IsPath() {
					f = append(f, &pulumirpc.CheckFailure{Property: "source", Reason: "archive must be a path to a file or directory"})
				}
			default:
				f = append(f, &pulumirpc.CheckFailure{Property: "source", Reason: "source must be an asset or an archive"})
			}
			return f
		},
		CheckHook: func(c *fw.Ctx, news resource.PropertyMap) (resource.PropertyMap, error) {
			withConnectionDefaults(news)
			if v, ok := fw.Get(news, "source"); ok && v.IsAsset() && v.AssetValue().Hash == "" && !fw.ContainsUnknowns(v) {
				a := *v.AssetValue()
				if err := a.EnsureHashWithWD(c.ProgramDir); err != nil {
					return nil, fmt.Errorf("source: %w", err)
				}
				news["source"] = resource.NewAssetProperty(&a)
			}
			return news, nil
		},
		PreviewCreate: func(_ *fw.Ctx, news resource.PropertyMap) resource.PropertyMap { return fw.Copy(news) },
		Create: func(c *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			if err := copyToRemote(c, news); err != nil {
				return "", nil, err
			}
			id, err := resource.NewUniqueHex("", 8, 0)
			return id, fw.Copy(news), err
		},
		Update: func(c *fw.Ctx, _ string, olds, news resource.PropertyMap, preview bool) (resource.PropertyMap, error) {
			if preview {
				return fw.Copy(news), nil
			}
			o, _ := fw.Get(olds, "source")
			n, _ := fw.Get(news, "source")
			if !fw.Equal(o, n, false) || fw.Str(olds, "remotePath") != fw.Str(news, "remotePath") {
				if err := copyToRemote(c, news); err != nil {
					return nil, err
				}
			}
			return fw.Copy(news), nil
		},
	}
}

func localPath(c *fw.Ctx, p string) string {
	if filepath.IsAbs(p) || c.ProgramDir == "" {
		return p
	}
	return filepath.Join(c.ProgramDir, p)
}

func copyToRemote(c *fw.Ctx, news resource.PropertyMap) error {
	conn, err := ConnectionFrom(news)
	if err != nil {
		return err
	}
	dest := fw.Str(news, "remotePath")
	v, _ := fw.Get(news, "source")
	var text *string
	var src string
	switch {
	case v.IsAsset() && v.AssetValue().IsText():
		t := v.AssetValue().Text
		text = &t
	case v.IsAsset():
		src = localPath(c, v.AssetValue().Path)
	case v.IsArchive():
		src = localPath(c, v.ArchiveValue().Path)
	default:
		return errors.New("source must be an asset or an archive")
	}
	if text != nil {
		c.Log(diag.Debug, fmt.Sprintf("Creating file: %s:%s from text asset", conn.Host, dest))
	} else {
		c.Log(diag.Debug, fmt.Sprintf("Creating file: %s:%s from local file %s", conn.Host, dest, src))
	}
	client, err := conn.Dial(c)
	if err != nil {
		return err
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	defer sc.Close()
	if text != nil {
		return copyText(sc, *text, dest)
	}
	return sftpCopy(sc, src, dest)
}

func remoteStat(sc *sftp.Client, p string) (fs.FileInfo, error) {
	info, err := sc.Stat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to stat remote path %s: %w", p, err)
	}
	if err != nil {
		return nil, nil
	}
	return info, nil
}

func mkParents(sc *sftp.Client, p string) error {
	if dir := path.Dir(p); dir != "." && dir != "/" {
		if err := sc.MkdirAll(dir); err != nil {
			return fmt.Errorf("failed to create remote directory %s: %w", dir, err)
		}
	}
	return nil
}

func copyText(sc *sftp.Client, content, dest string) error {
	st, err := remoteStat(sc, dest)
	if err != nil {
		return err
	}
	if st != nil && st.IsDir() {
		return fmt.Errorf("remote path %s is a directory; when using a text asset, remotePath must be a file path", dest)
	}
	if err := mkParents(sc, dest); err != nil {
		return err
	}
	f, err := sc.Create(dest)
	if err != nil {
		return fmt.Errorf("failed to create remote file %s: %w", dest, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(content)); err != nil {
		return fmt.Errorf("failed to write text content to remote path %s: %w", dest, err)
	}
	return nil
}

// sftpCopy follows the real provider's table:
//
//	source | dest exists as dir  | dest does not exist | dest exists as file
//	dir    | dest/dir            | dest/dir            | error
//	dir/   | dest/x for x in dir | dest                | error
//	file   | dest/file           | dest (parents made) | dest (overwritten)
func sftpCopy(sc *sftp.Client, src, dest string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	st, err := remoteStat(sc, dest)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if st != nil && st.IsDir() {
			dest = path.Join(dest, filepath.Base(src))
		} else if st == nil {
			if err := mkParents(sc, dest); err != nil {
				return err
			}
		}
		return copyFile(sc, src, dest)
	}
	if st != nil && !st.IsDir() {
		return fmt.Errorf("remote path %s exists but is not a directory", dest)
	}
	if st == nil {
		if err := sc.MkdirAll(dest); err != nil {
			return fmt.Errorf("failed to create remote directory %s: %w", dest, err)
		}
	}
	if !strings.HasSuffix(src, "/") {
		dest = path.Join(dest, filepath.Base(src))
		if err := sc.MkdirAll(dest); err != nil {
			return fmt.Errorf("failed to create remote directory %s: %w", dest, err)
		}
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		if d.IsDir() {
			st, err := remoteStat(sc, target)
			if err != nil {
				return err
			}
			if st == nil {
				return sc.Mkdir(target)
			}
			if !st.IsDir() {
				return fmt.Errorf("remote path %s exists but is not a directory", target)
			}
			return nil
		}
		return copyFile(sc, p, target)
	})
}

func copyFile(sc *sftp.Client, src, dst string) error {
	local, err := os.Open(src)
	if err != nil {
		return err
	}
	defer local.Close()
	remote, err := sc.Create(dst)
	if err != nil {
		return fmt.Errorf("failed to create remote file %s: %w", dst, err)
	}
	defer remote.Close()
	if _, err := io.Copy(remote, local); err != nil {
		return fmt.Errorf("failed to copy file %s to remote path %s: %w", src, dst, err)
	}
	return nil
}
