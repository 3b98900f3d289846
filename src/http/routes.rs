//! The one way an HTTP route is added: [`Routes`] puts it on the axum [`Router`] and records
//! its `(method, path)` as it does, so a test can compare what the router really serves with
//! what the OpenAPI document describes (`crate::api::openapi`), in both directions.
//!
//! Adding a route is two small steps: `.get(path, handler)` (or `post`, `delete`, `options`)
//! here, and `#[utoipa::path(get, path = "...")]` on the handler, named in the document's
//! `paths(...)` list. The coverage test fails until both are there.

use std::collections::BTreeSet;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

/// `(METHOD, path)` of every route added, with axum's path syntax (`{stream}`, `{*rest}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable(BTreeSet<(String, String)>);

impl RouteTable {
    fn add(&mut self, method: &Method, path: &str) {
        let fresh = self.0.insert((method.as_str().to_string(), path.to_string()));
        assert!(fresh, "route {method} {path} added twice");
    }

    fn extend(&mut self, other: RouteTable) {
        for (method, path) in other.0 {
            self.add(&method.parse().expect("a method recorded before"), &path);
        }
    }

    /// The routes, as `(METHOD, path)` with a wildcard `{*rest}` written `{rest}` (as OpenAPI
    /// writes it).
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        self.0.iter().map(|(m, p)| (m.clone(), p.replace("{*", "{"))).collect()
    }
}

/// An axum [`Router`] and the table of what was added to it.
pub struct Routes<S = ()> {
    router: Router<S>,
    table: RouteTable,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Routes<S> {
        Routes { router: Router::new(), table: RouteTable::default() }
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::GET, path, routing::get(handler))
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::POST, path, routing::post(handler))
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::PUT, path, routing::put(handler))
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::DELETE, path, routing::delete(handler))
    }

    pub fn options<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::OPTIONS, path, routing::options(handler))
    }

    /// One method of `path` (axum merges the methods of one path into one route).
    fn on(mut self, method: Method, path: &'static str, route: MethodRouter<S>) -> Self {
        self.table.add(&method, path);
        self.router = self.router.route(path, route);
        self
    }

    /// Applies `f` to the router (a layer, say); it may not add routes.
    pub fn map_router(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes { router: self.router.with_state(state), table: self.table }
    }

    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.table.extend(other.table);
        self.router = self.router.merge(other.router);
        self
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_method_of_each_path() {
        let routes: Routes = Routes::new()
            .get("/a/{id}", || async { "a" })
            .delete("/a/{id}", || async { "" })
            .merge(Routes::new().get("/files/{*rest}", || async { "f" }));
        let ops: Vec<_> = routes.table().operations().into_iter().collect();
        assert_eq!(
            ops,
            [
                ("DELETE".into(), "/a/{id}".into()),
                ("GET".into(), "/a/{id}".into()),
                ("GET".into(), "/files/{rest}".into())
            ]
        );
    }

    #[test]
    #[should_panic(expected = "added twice")]
    fn a_route_added_twice_is_a_bug() {
        let _: Routes = Routes::new().get("/a", || async { "a" }).merge(Routes::new().get("/a", || async { "b" }));
    }
}
