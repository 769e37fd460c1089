package builder

import (
	"fmt"
	"time"
)

// step prints one build step line ("[compute-base +12.3s] install …") to the
// progress writer; the elapsed time is since the Builder was created.
func (b *Builder) step(name, format string, args ...any) {
	if b.started.IsZero() {
		b.started = time.Now()
	}
	fmt.Fprintf(b.progress, "[%s +%.1fs] %s\n", name, time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
	b.log.Debug("build step", "image", name, "step", fmt.Sprintf(format, args...))
}
