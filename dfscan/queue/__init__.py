"""Moderation queues: a watched folder scanned as files arrive (`watch`), what was seen before
(`fingerprint`, `seen`), people's labels (`labels`), all kept in the result store (`db`)."""
