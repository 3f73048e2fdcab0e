// Package e2e holds the end-to-end tests of snaphooks: real btrfs snapshots
// of live MariaDB and PostgreSQL servers, taken through hooks.Plan with the
// database hooks, restored to writable copies and checked by starting a
// second server on each copy. One test takes the MariaDB snapshot through
// the snaphook command instead (`snaphook run --fs e2e/mariadb-data --fs
// e2e/mariadb-log`, built with the go command into SNAPHOOKS_E2E_TMP), with
// a hook list file that holds the lock user's DSN and is removed after the
// run.
//
// The tests named TestBlock* take block-level snapshots instead, of a second
// MariaDB and PostgreSQL whose data and logs are on two XFS volumes each
// (loop devices over files on the btrfs filesystem): a volume snapshot is a
// reflink copy of the backing file, taken one volume after the other, and
// the restore mounts the copies. Their fsfreeze rows use the fsfreeze hook
// type.
//
// The tests are in files with the build tag e2e, so `go test ./...` does not
// build them. Run them with scripts/e2e.sh (as root), which makes the btrfs
// filesystem, starts the servers on its subvolumes, runs
// `go test -tags e2e ./e2e/` (or its benchmarks with --bench) and tears
// everything down. It passes the tests, in the environment:
//
//	SNAPHOOKS_E2E=1
//	SNAPHOOKS_E2E_TMP          a directory for the sockets and logs of the copies' servers,
//	                           and for snaphook, its hook list and CMD
//	SNAPHOOKS_E2E_SNAPDIR      a btrfs subvolume under which snapshots and copies are made
//	SNAPHOOKS_E2E_MY_DATA      subvolume: MariaDB's datadir
//	SNAPHOOKS_E2E_MY_LOG       subvolume: MariaDB's innodb_log_group_home_dir
//	SNAPHOOKS_E2E_PG_DATA      subvolume holding PostgreSQL's data directory "data"
//	SNAPHOOKS_E2E_PG_WAL       subvolume holding its WAL directory "wal" (initdb --waldir)
//	SNAPHOOKS_E2E_MARIADBD     path of mariadbd
//	SNAPHOOKS_E2E_MY_OPTS      the primary's mariadbd options, for the copies' servers
//	SNAPHOOKS_E2E_PG_BIN       directory of postgres, pg_controldata
//	SNAPHOOKS_E2E_MY_ADMIN_DSN all privileges (writer, checks)
//	SNAPHOOKS_E2E_MY_LOCK_DSN  RELOAD only: the DSN of the mysql-lock-tables and
//	                           mariadb-backup-stage hooks
//	SNAPHOOKS_E2E_PG_ADMIN_DSN superuser (writer, checks)
//	SNAPHOOKS_E2E_PG_CHKPT_DSN pg_checkpoint only: the DSN of the postgres-checkpoint hook
//	SNAPHOOKS_E2E_TRIES        tries of each negative case
//	SNAPHOOKS_E2E_BLOCK_IMAGES the directory (on btrfs) of the volumes' backing files
//	                           NAME.img and of their snapshots
//	SNAPHOOKS_E2E_BLOCK_MY_DATA, _MY_LOG, _PG_DATA, _PG_WAL
//	                           mount points of the volumes (NAME is the last element),
//	                           as SNAPHOOKS_E2E_MY_DATA ... are the subvolumes
//	SNAPHOOKS_E2E_BLOCK_MY_ADMIN_DSN, _MY_LOCK_DSN, _PG_ADMIN_DSN, _PG_CHKPT_DSN
//	                           the DSNs of the servers on the volumes
//	SNAPHOOKS_E2E_BLOCK_TRIES  tries of each case of the block-level tests
//	SNAPHOOKS_E2E_ROUNDS       rounds of each benchmark case
//
// Measurements are logged as lines that start with "RESULT ", which the
// script collects into its summary.
package e2e
