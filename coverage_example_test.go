package hooks_test

import (
	"fmt"

	"github.com/snaphooks/hooks"
)

// The files of a MariaDB server, as MySQLLockTables.ServerFiles finds them
// (it asks the server, then the mount table), checked against a snapshot of
// tank/db alone and against a recursive one of tank.
func ExampleCheckCoverage() {
	files := []hooks.ServerFile{
		{Role: "the data directory", Path: "/srv/db/mysql", Resolved: "/srv/db/mysql", Mount: "/srv/db", FSType: "zfs", Dataset: "tank/db"},
		{Role: "the redo log", Path: "/srv/log/redo", Resolved: "/srv/log/redo", Mount: "/srv/log", FSType: "zfs", Dataset: "tank/log"},
	}
	db, _ := hooks.NewDatasetPath("tank/db")
	problems, _ := hooks.CheckCoverage(files, hooks.Scope{Datasets: []hooks.Dataset{db}})
	for _, p := range problems {
		fmt.Println(p.Dataset+":", p)
	}
	tank, _ := hooks.NewDatasetPath("tank")
	problems, _ = hooks.CheckCoverage(files, hooks.Scope{Datasets: []hooks.Dataset{tank}, Recursive: true})
	fmt.Println(len(problems), "problems with -r tank")
	// Output:
	// tank/log: the redo log (/srv/log/redo) is on tank/log, which this snapshot does not include
	// 0 problems with -r tank
}
