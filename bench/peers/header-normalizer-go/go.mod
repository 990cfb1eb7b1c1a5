module filtersuite.local/bench/peers/header-normalizer-go

go 1.26
