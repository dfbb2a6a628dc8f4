// Start Swagger UI on the page /api/docs/ over the schema its element names. "Try it out" uses
// the browser's session, which Django guards with CSRF: send the token on every unsafe request.
window.addEventListener("DOMContentLoaded", function () {
  var element = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: element.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: function (request) {
      if (!/^(GET|HEAD|OPTIONS)$/i.test(request.method || "GET")) {
        request.headers["X-CSRFToken"] = element.dataset.csrfToken;
      }
      return request;
    },
  });
});
