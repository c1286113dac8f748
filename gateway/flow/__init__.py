"""How records move through the gateway, between the HTTP rooms and the store: prepared from a
body, routed and shared under the policy in force, fetched from sources and pushed to consumers."""
