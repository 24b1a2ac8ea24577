//! The WebSocket API's routes and the function that serves each: the one list
//! the local stack, the actions handler and the template's test go by.

/// A function serving WebSocket routes (`functions/{name}`, `{Name}Function`
/// in template.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteFunction {
    Connect,
    Disconnect,
    Default,
    Ping,
    Actions,
}

impl RouteFunction {
    /// The function's crate directory under `functions/`.
    pub fn name(self) -> &'static str {
        match self {
            RouteFunction::Connect => "connect",
            RouteFunction::Disconnect => "disconnect",
            RouteFunction::Default => "default",
            RouteFunction::Ping => "ping",
            RouteFunction::Actions => "actions",
        }
    }
}

/// A route key and the function its integration invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub key: &'static str,
    pub function: RouteFunction,
}

const fn route(key: &'static str, function: RouteFunction) -> Route {
    Route { key, function }
}

/// Every route of the WebSocket API.
pub const ROUTES: &[Route] = &[
    route("$connect", RouteFunction::Connect),
    route("$disconnect", RouteFunction::Disconnect),
    route("$default", RouteFunction::Default),
    route("ping", RouteFunction::Ping),
    route("subscribe", RouteFunction::Actions),
    route("unsubscribe", RouteFunction::Actions),
    route("publish", RouteFunction::Actions),
    route("presence", RouteFunction::Actions),
    route("recover", RouteFunction::Actions),
    route("history", RouteFunction::Actions),
    route("event", RouteFunction::Actions),
];

/// The function serving route `key`, if it is a route.
pub fn function_of(key: &str) -> Option<RouteFunction> {
    ROUTES.iter().find(|r| r.key == key).map(|r| r.function)
}

/// The route a client action selects (`$request.body.action`): a route key
/// not starting with `$`.
pub fn action_route(action: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| !r.key.starts_with('$') && r.key == action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_select_only_their_routes() {
        assert_eq!(
            action_route("publish").map(|r| r.function),
            Some(RouteFunction::Actions)
        );
        assert_eq!(action_route("$connect"), None);
        assert_eq!(action_route("dance"), None);
        assert_eq!(function_of("$default"), Some(RouteFunction::Default));
    }
}
