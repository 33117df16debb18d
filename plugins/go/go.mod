module arkflow/plugins/go

go 1.27.1
