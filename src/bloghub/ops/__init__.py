"""Operations tooling: lag reader, dashboard, replay and migration."""
