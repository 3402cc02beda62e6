// The API docs: Swagger UI (vendored from npm, see api/assets.py) on /openapi.json.
// "Authorize" takes an access token (from POST /v1/auth/login) for the locked operations;
// a login or refresh run from the page authorizes with the token it answers.
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

  const authorize = (token) => window.ui.authActions.authorize({
    bearer: { name: 'bearer', schema: { type: 'http', scheme: 'bearer' }, value: token },
  });

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
      const headers = response.headers || {};
      if (headers['bloghub-position'] && follow.checked) after.value = headers['bloghub-position'];
      if (headers['x-jwt-token']) authorize(headers['x-jwt-token']);
      return response;
    },
  });
}());
