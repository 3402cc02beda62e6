// The API docs: Swagger UI (vendored from npm, see api/assets.py) on /openapi.json.
// "Authorize" takes an access token (from POST /v1/auth/login) for the locked operations.
// Read-your-writes from the page: a write's Bloghub-Position fills the Bloghub-After field
// (unless unticked), and every request then carries it, so a read made just after a write
// waits until that write is projected.
(function () {
  'use strict';
  const after = document.getElementById('after');
  const follow = document.getElementById('follow');
  document.getElementById('after-clear').addEventListener('click', () => { after.value = ''; });
  document.getElementById('consistency').addEventListener('submit', (e) => e.preventDefault());

  const named = (headers, name) =>
    Object.keys(headers).some((k) => k.toLowerCase() === name.toLowerCase());

  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    displayRequestDuration: true,
    // No outside validator badge: nothing leaves this origin.
    validatorUrl: null,
    requestInterceptor: (request) => {
      const token = after.value.trim();
      if (token && !request.loadSpec && !named(request.headers, 'Bloghub-After')) {
        request.headers['Bloghub-After'] = token;
      }
      return request;
    },
    responseInterceptor: (response) => {
      const position = response.headers && response.headers['bloghub-position'];
      if (position && follow.checked) after.value = position;
      return response;
    },
  });
}());
