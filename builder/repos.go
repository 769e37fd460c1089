package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/buildah"

	"github.com/imgctl/imgctl/builder/recipe"
)

// addRepos writes the recipe's extra repositories in the package manager's own
// format (apt sources.list.d, yum.repos.d, zypp repos.d), with their keys.
func (b *Builder) addRepos(ctx context.Context, bld *buildah.Builder, r *recipe.Recipe) error {
	stage, err := os.MkdirTemp("", "imgctl-repos-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	pm := r.EffectivePackageManager()
	for i, repo := range r.Repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.step(r.Name, "add repository %s", repo.Name)
		keyDest := ""
		if repo.Key != "" {
			keyDest = "/etc/imgctl/keys/" + repo.Name + filepath.Ext(repo.Key)
			if err := bld.Add(keyDest, false, buildah.AddAndCopyOptions{Chown: "0:0", Chmod: "0644"}, r.Resolve(repo.Key)); err != nil {
				return r.ErrorAt(fmt.Sprintf("repos[%d].key", i), "copy key: %v", err)
			}
		}
		var name, content string
		switch pm {
		case recipe.Apt:
			name = "/etc/apt/sources.list.d/" + repo.Name + ".list"
			opts := ""
			if keyDest != "" {
				opts = "[signed-by=" + keyDest + "] "
			}
			comps := repo.Components
			if len(comps) == 0 {
				comps = []string{"main"}
			}
			content = fmt.Sprintf("deb %s%s %s %s\n", opts, repo.URL, repo.Suite, strings.Join(comps, " "))
		case recipe.Dnf, recipe.Zypper:
			name = "/etc/yum.repos.d/" + repo.Name + ".repo"
			if pm == recipe.Zypper {
				name = "/etc/zypp/repos.d/" + repo.Name + ".repo"
			}
			check := 1
			if repo.GPGCheck != nil && !*repo.GPGCheck {
				check = 0
			}
			content = fmt.Sprintf("[%s]\nname=%s\nbaseurl=%s\nenabled=1\ngpgcheck=%d\n", repo.Name, repo.Name, repo.URL, check)
			if keyDest != "" {
				content += "gpgkey=file://" + keyDest + "\n"
			}
		}
		local := filepath.Join(stage, filepath.Base(name))
		if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
			return err
		}
		if err := bld.Add(name, false, buildah.AddAndCopyOptions{Chown: "0:0", Chmod: "0644"}, local); err != nil {
			return r.ErrorAt(fmt.Sprintf("repos[%d]", i), "write %s: %v", name, err)
		}
	}
	return nil
}
