FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# The admin's and the API docs' static files, served by whitenoise from the web process.
# The URLs only have to be set, not reachable: unset, the settings would make the embedded
# broker's folders inside the image.
RUN DATABASE_URL=postgres://build@127.0.0.1:5432/build BROKER_URL=amqp://build@127.0.0.1:5672// \
    python manage.py collectstatic --noinput

RUN useradd --create-home app
USER app

CMD ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi:application"]
