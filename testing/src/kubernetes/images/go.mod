module berth.local/testimages

go 1.26
