package nfs

import (
	"fmt"
	"strings"
)

// export is one image root served over NFS.
type export struct {
	ID     int
	Path   string // mount point on this host
	Pseudo string // NFSv4 path nodes mount
}

// ganeshaConfig renders the ganesha configuration: NFSv4 over TCP only,
// bound to the boot address, read-only exports without root squashing
// (the root's files belong to root), numeric owners (the id mapper lives on
// the NFS root itself, so a node would hang waiting for it) and no grace
// period (nothing is locked on a read-only root).
func ganeshaConfig(c Config, stateDir string, exports []export) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by imgctl serve; regenerated on every start. Do not edit.
NFS_CORE_PARAM {
	Protocols = 4;
	NFS_Port = %d;
	Bind_addr = %s;
	Enable_NLM = false;
	Enable_RQUOTA = false;
}
NFSV4 {
	Graceless = true;
	Allow_Numeric_Owners = true;
	Only_Numeric_Owners = true;
	RecoveryBackend = fs;
	RecoveryRoot = "%s";
}
NFS_KRB5 {
	Active_krb5 = false;
}
LOG {
	Default_Log_Level = %s;
}
`, c.Port, c.Address, stateDir+"/nfs/recovery", c.LogLevel)
	for _, e := range exports {
		fmt.Fprintf(&b, `EXPORT {
	Export_Id = %d;
	Path = "%s";
	Pseudo = "%s";
	Access_Type = RO;
	Squash = No_Root_Squash;
	Protocols = 4;
	Transports = TCP;
	SecType = sys;
	FSAL {
		Name = VFS;
	}
}
`, e.ID, e.Path, e.Pseudo)
	}
	return b.String()
}
