module github.com/raft-manager/raft-manager/bindings/go

go 1.22
