"""``rlvr/MultiHop-v0``: multi-hop questions over a generated knowledge graph (see ``env``)."""
