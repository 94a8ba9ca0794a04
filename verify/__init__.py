"""The claim suites of ``polyloss verify``: one module per claim of Hayou (2025) and docs/theory.md.

Installed as ``polyloss.claims``. Each module defines ``CLAIM`` (a :class:`polyloss.checks.Claim`)
and ``run(ctx) -> Verdict``; :data:`SUITES` lists them in order.
"""

SUITES = ("c1_t1_limits", "c2_mup_transfer", "c3_sp_scaling", "c4_ntp_no_limit", "c5_depth",
          "c6_any_step", "c7_rate_change", "c8_beyond_proof", "c9_recipe_transfer", "c10_mup_all_layers",
          "c11_sp_all_layers", "c12_decay_modes", "c13_fluctuation_law", "c14_fast_transfer",
          "c15_growing_horizon", "c16_k1_weight_decay", "c17_k2_alignment", "c18_k3_warmup", "c19_l1_lingle_ablations")
