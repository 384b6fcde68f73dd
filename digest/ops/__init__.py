"""Operations: the admin dashboard and its stats and charts, operator actions, /healthz."""
