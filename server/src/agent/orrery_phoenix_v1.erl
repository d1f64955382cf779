%% Orrery's view of Phoenix on the node, loaded with the agent and removed with it (the
%% guard's list). Everything here only reads. Detection is by behaviour, never by the
%% app's names:
%%   a LiveView module exports __live__/0 (what `use Phoenix.LiveView` defines) whose
%%   kind is view; its connected views run in Phoenix.LiveView.Channel processes that,
%%   once mounted (LiveView 0.19.3 and later), have `$initial_call` {View, mount, 3} and
%%   `$process_label` {'Elixir.Phoenix.LiveView', View, Topic} (before: {Channel, init,
%%   1}), each with a state map holding
%%   socket => #{'__struct__' => 'Elixir.Phoenix.LiveView.Socket', view => Module, ...};
%%   a router exports __routes__/0 (a list of Phoenix.Router.Route structs);
%%   an endpoint declares the Phoenix.Endpoint behaviour and exports config/1 and url/0.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_phoenix_v1).
-export([query/3, kind/1, views/3, routes/2, endpoint/2]).

%% Mods: the modules of the open documents. Pids: all (walk every process for LiveView
%% channels) or the channel pids found by the last walk (only those are read again).
%% -> #{kinds, views => #{View => [View info]}, channels => [Pid], routers, endpoints}.
query(Mods, Pids, Limits) ->
    Kinds = [{M, kind(M)} || M <- Mods],
    Views = [M || {M, view} <- Kinds],
    {ByView, Channels} = case Views of
                             [] -> {#{}, []};
                             _ -> views(Views, Pids, Limits)
                         end,
    #{kinds => maps:from_list([KV || {_, K} = KV <- Kinds, K =/= none]),
      views => ByView,
      channels => Channels,
      routers => maps:from_list([{M, safe(fun() -> routes(M, Limits) end)}
                                 || {M, router} <- Kinds]),
      endpoints => maps:from_list([{M, safe(fun() -> endpoint(M, Limits) end)}
                                   || {M, endpoint} <- Kinds])}.

safe(F) ->
    try F() catch C:R -> {error, {C, R}} end.

%% view | router | endpoint | none.
kind(M) ->
    case code:is_loaded(M) of
        false -> none;
        _ ->
            Exports = try erlang:get_module_info(M, exports) catch _:_ -> [] end,
            Has = fun(FA) -> lists:member(FA, Exports) end,
            case Has({'__live__', 0}) andalso live_kind(M) of
                view -> view;
                _ ->
                    case Has({'__routes__', 0}) of
                        true -> router;
                        false ->
                            case Has({config, 1}) andalso Has({url, 0})
                                andalso lists:member('Elixir.Phoenix.Endpoint', behaviours(M)) of
                                true -> endpoint;
                                false -> none
                            end
                    end
            end
    end.

%% A LiveComponent exports __live__/0 too, with kind component.
live_kind(M) ->
    try M:'__live__'() of
        #{kind := K} -> K;
        _ -> view
    catch _:_ -> none
    end.

behaviours(M) ->
    Attrs = try erlang:get_module_info(M, attributes) catch _:_ -> [] end,
    lists:append([V || {K, V} <- Attrs, K =:= behaviour orelse K =:= behavior, is_list(V)]).

%% The connected views of the modules Views: {#{View => [Info]}, ChannelPids}.
views(Views, Pids, Limits) ->
    Channels = case Pids of
                   all -> [P || P <- erlang:processes(), is_channel(P, Views)];
                   L when is_list(L) -> [P || P <- L, is_pid(P), is_channel(P, Views)]
               end,
    Timeout = maps:get(state_timeout, Limits, 200),
    Found = [{V, P, S} || P <- Channels, {V, S} <- [channel_state(P, Timeout)],
                          lists:member(V, Views)],
    ByView = lists:foldl(fun({V, P, S}, Acc) ->
                                 Acc#{V => [view_info(P, S, Limits) | maps:get(V, Acc, [])]}
                         end, maps:from_list([{V, []} || V <- Views]), Found),
    {maps:map(fun(_, Is) -> lists:reverse(Is) end, ByView), Channels}.

%% A channel of one of Views, or one still joining (its view unknown yet). Only the
%% initial call is read here (every process is looked at); the socket tells the view.
is_channel(P, Views) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {V, mount, 3}} -> lists:member(V, Views);
                {_, {'Elixir.Phoenix.LiveView.Channel', init, 1}} -> true;
                _ -> false
            end;
        _ -> false
    end.

%% {View, State} of a channel that has mounted, else {none, nil}.
channel_state(P, Timeout) ->
    try sys:get_state(P, Timeout) of
        #{socket := #{'__struct__' := 'Elixir.Phoenix.LiveView.Socket', view := V}} = S
          when is_atom(V) -> {V, S};
        _ -> {none, nil}
    catch _:_ -> {none, nil}
    end.

%% Pid, URL (the channel's `uri`/`url` when it keeps one, else the socket's host_uri),
%% the connect params, the topic, and the assigns without Phoenix's change tracking.
view_info(P, #{socket := Socket} = S, Limits) ->
    Assigns = case maps:get(assigns, Socket, #{}) of
                  A when is_map(A) -> maps:remove('__changed__', A);
                  A -> A
              end,
    Private = case maps:get(private, Socket, #{}) of
                  Pr when is_map(Pr) -> Pr;
                  _ -> #{}
              end,
    Url = first_url([maps:get(uri, S, nil), maps:get(url, S, nil),
                     maps:get(host_uri, Socket, nil)]),
    Info = erlang:process_info(P, [message_queue_len, memory]),
    #{pid => P,
      url => Url,
      params => orrery_agent_v1:trunc(maps:get(connect_params, Private, nil), small(Limits)),
      topic => orrery_agent_v1:trunc(maps:get(topic, S, nil), small(Limits)),
      queue => case Info of [{message_queue_len, Q} | _] -> Q; _ -> 0 end,
      memory => case Info of [_, {memory, Mem}] -> Mem; _ -> 0 end,
      assigns => orrery_agent_v1:trunc(Assigns, Limits)}.

small(Limits) -> Limits#{depth => 4, items => 10, binary => 120, budget => 200}.

first_url([]) -> nil;
first_url([B | _]) when is_binary(B) -> B;
first_url([#{'__struct__' := 'Elixir.URI'} = U | T]) ->
    try 'Elixir.URI':to_string(U) of
        B when is_binary(B) -> B;
        _ -> first_url(T)
    catch _:_ -> first_url(T)
    end;
first_url([_ | T]) -> first_url(T).

%% A router's routes: [#{verb, path, plug, action, live => View | nil, live_action}],
%% at most max_routes (default 200), and how many there are.
routes(M, Limits) ->
    All = M:'__routes__'(),
    Max = maps:get(max_routes, Limits, 200),
    #{count => length(All),
      items => [route(R) || R <- lists:sublist(All, Max), is_map(R)]}.

route(R) ->
    Meta = case maps:get(metadata, R, #{}) of
               Mt when is_map(Mt) -> Mt;
               _ -> #{}
           end,
    {Live, LiveAction} = case maps:get(phoenix_live_view, Meta, nil) of
                             T when is_tuple(T), tuple_size(T) >= 2 ->
                                 {element(1, T), element(2, T)};
                             _ -> {nil, nil}
                         end,
    #{verb => maps:get(verb, R, nil),
      path => maps:get(path, R, nil),
      plug => maps:get(plug, R, nil),
      action => orrery_agent_v1:trunc(maps:get(plug_opts, R, nil),
                                      #{depth => 3, items => 5, binary => 60, budget => 30}),
      live => Live,
      live_action => LiveAction}.

%% An endpoint: its url/0, config(:adapter), config(:http) (port and ip), config(:url),
%% and the process registered under its name (Phoenix's endpoint supervisor).
endpoint(M, Limits) ->
    Small = small(Limits),
    Cfg = fun(K) -> try orrery_agent_v1:trunc(M:config(K), Small) catch _:_ -> nil end end,
    Http = Cfg(http),
    Https = Cfg(https),
    #{url => try M:url() catch _:_ -> nil end,
      adapter => Cfg(adapter),
      http => Http,
      https => Https,
      port => port_of([Http, Https]),
      server => Cfg(server),
      pid => whereis(M),
      runs => case whereis(M) of
                  P when is_pid(P) -> orrery_agent_v1:callback_module(P);
                  _ -> nil
              end}.

port_of([]) -> nil;
port_of([Opts | T]) when is_list(Opts) ->
    case lists:keyfind(port, 1, [O || O <- Opts, is_tuple(O), tuple_size(O) =:= 2]) of
        {port, P} -> P;
        false -> port_of(T)
    end;
port_of([_ | T]) -> port_of(T).
