"""Routing for quality and cost: per-question outcomes, prices, routers and their accuracy-cost frontier.

Pure numpy (no torch): :mod:`.outcomes` (outcomes JSONL, price table, cost per answer), :mod:`.strategies`
(category / expected-accuracy / cost-aware routers), :mod:`.frontier` (bootstrap accuracy, APGR, hull, cost to
95% of the best), :mod:`.splits` (a category model's splits with question ids), :mod:`.route_config` (a router
YAML's ``categories`` from measured outcomes). See docs/routing.md.
"""
