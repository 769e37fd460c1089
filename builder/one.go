package builder

import (
	"context"

	"github.com/imgctl/imgctl/builder/recipe"
)

// BuildLayer builds r's own layer alone, or reuses it by its cache key. Its
// parent must be built already (a recipe parent: tagged
// imgctl/<parent>:latest in the store), so a caller that walks a DAG of
// recipes builds each parent once and never rebuilds it for a child.
func (b *Builder) BuildLayer(ctx context.Context, r *recipe.Recipe) (Result, error) {
	res, err := b.buildLayer(ctx, r)
	if err != nil {
		return Result{}, err
	}
	return *res, nil
}
