"""Gold sets the benchmarks score the product against (versioned data beside a typed loader)."""
