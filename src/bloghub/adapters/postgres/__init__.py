"""PostgreSQL: engine, SQLAlchemy Core tables, generations, error translation."""
