package builder_test

import (
	"testing"

	"github.com/imgctl/imgctl/builder/buildtest"
)

func TestMain(m *testing.M) { buildtest.Main(m) }
