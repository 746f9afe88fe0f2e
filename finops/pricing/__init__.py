"""Price rates: cloud catalogs, rate cards and on-prem amortisation."""
