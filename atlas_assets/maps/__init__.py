"""The map read model: one typed, row-keyed view of a built map, shared by the Atlas accessors and
the web map (`model`), loaded once per map version (`loader`), or made from ready tables (`frames`)."""
