"""gunicorn's settings for Directo's web processes; `directo run` and the Procfile both start gunicorn with them."""

wsgi_app = "voice.web:create_web_app()"
worker_class = "voice.web_worker.WebWorker"
# Streams end the moment the server is asked to stop; this bounds what is left (see voice.web_worker).
graceful_timeout = 4
# Directo does not use gunicorn's control socket, whose default path every server on the machine would share.
control_socket_disable = True
