// Starts GraphiQL on /graphql (development and demo only). A file rather than an inline
// script, so the page keeps the same Content Security Policy as every other page.
// Signed-in people query as themselves: the session cookie goes along (same origin) and
// the CSRF token from the page's <meta> travels in the header the request guard expects,
// exactly as htmx sends it.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var headers = meta && meta.content ? { "X-CSRF-Token": meta.content } : {};
  var fetcher = GraphiQL.createFetcher({ url: "/graphql", headers: headers });
  var root = document.getElementById("graphiql");
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: root.dataset.defaultQuery,
      defaultEditorToolsVisibility: false,
    })
  );
})();
