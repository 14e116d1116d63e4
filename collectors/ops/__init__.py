"""One module per op family; each registers its collector when imported (collectors.registry.load_all)."""
FAMILIES = ("gemm", "attention_prefill", "attention_decode", "mla", "moe", "elementwise", "comm", "linear_attention",
            "sparse_attention", "sparse_module", "mhc_module", "dsv4_module")
