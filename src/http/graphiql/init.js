// GraphiQL for orderscope: every request carries the token typed into the bar (kept in
// this browser's localStorage), and the schema is loaded again when it changes.
(function () {
  var input = document.getElementById('token');
  var status = document.getElementById('status');
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  var KEY = 'orderscope.token';
  // A link such as /graphql#token=… (the fragment never reaches a server) fills the
  // field once and is then removed from the address bar.
  var fromLink = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  // …&run runs the editor's query once it has loaded (for demos and screenshots).
  var runOnLoad = /(?:^#|&)run(?:&|$)/.test(location.hash);
  if (fromLink) {
    localStorage.setItem(KEY, decodeURIComponent(fromLink[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  input.value = localStorage.getItem(KEY) || '';

  var schemaLoaded = false;

  function fetcher(params) {
    var headers = {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json;q=0.9'
    };
    var token = input.value.trim();
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch('/graphql', { method: 'POST', headers: headers, body: JSON.stringify(params) })
      .then(function (response) {
        status.textContent = response.status === 401 ? 'token refused' : '';
        status.className = response.status === 401 ? 'bad' : '';
        return response.json().then(function (body) {
          if (params.operationName === 'IntrospectionQuery' && body.data) schemaLoaded = true;
          return body;
        });
      });
  }

  function render() {
    root.render(React.createElement(GraphiQL, {
      key: input.value.trim(),
      fetcher: fetcher,
      defaultQuery: '# Paste a token above, then try:\n{\n  viewer { account { name } tenant { name } permissions }\n  shops { id name platform currency }\n}\n'
    }));
  }

  input.addEventListener('change', function () {
    localStorage.setItem(KEY, input.value.trim());
    render();
  });
  render();
  if (runOnLoad) {
    var tries = 0;
    // The button works once the query and result editors are up.
    var timer = setInterval(function () {
      var button = document.querySelector('.graphiql-execute-button');
      var ready = button && schemaLoaded && document.querySelectorAll('.CodeMirror').length >= 2;
      tries += 1;
      if (ready || tries > 100) {
        clearInterval(timer);
        if (ready) setTimeout(function () { button.click(); }, 300);
      }
    }, 100);
  }
})();
