package workers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LookPath finds a program as execvp would, with the worker's PATH;
// a relative path with a slash is taken against dir.
func LookPath(file, dir, path string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		if err := executable(file); err != nil {
			return "", fmt.Errorf("cannot run %s: %w", file, err)
		}
		return file, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, file)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cannot find %q in PATH (%s)", file, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return errors.New("not executable (chmod +x, or set `interpreter`)")
	}
	return nil
}
