%% Orrery's lookups of processes by the names written in the code, loaded with the agent
%% and removed with it: {global, Name}, {via, Mod, Name} (GenServer.whereis/1 semantics)
%% and, for a Registry whose key is computed, every process of the registry that runs
%% the module. Also: the user module behind a behaviour layer (a process whose callback
%% module is GenStage runs the module that does `use GenStage`), for process counts.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_names_v1).
-export([lookup/2, layers/1, runs/2, forget_dead/0]).

%% Named: [{Module, [Spec]}] -> #{Module => [Result]}, results in the order of the specs.
%% Spec: {global, Name, Registers} | {via, Mod, Name, Registers} |
%%       {registry_any, Reg, Max, KeyPattern}.
%% Registers: the module starts the process under this name, so show it whatever runs it;
%% otherwise show it only when its callback module is Module.
lookup(Named, Limits) ->
    maps:from_list([{M, [safe(fun() -> one(M, S, Limits) end) || S <- Specs]}
                    || {M, Specs} <- Named]).

safe(F) ->
    try F() catch C:R -> {error, {C, R}} end.

one(M, {global, Name, Registers}, Limits) ->
    found(M, global:whereis_name(Name), Registers, Limits);
one(M, {via, Mod, Name, Registers}, Limits) ->
    found(M, Mod:whereis_name(Name), Registers, Limits);
one(M, {registry_any, Reg, Max}, Limits) ->
    one(M, {registry_any, Reg, Max, '_'}, Limits);
one(M, {registry_any, Reg, Max, KeyPat}, Limits) ->
    Spec = [{{'$1', '$2', '_'}, [], [{{'$1', '$2'}}]}],
    All = [{K, P} || {K, P} <- 'Elixir.Registry':select(Reg, Spec), is_pid(P),
                     matches(KeyPat, K)],
    %% A key with literal parts names its processes whatever module they run (a
    %% supervisor started with a child list runs Supervisor.Default); a wholly computed
    %% key names the registry's processes that run the module.
    Mine = case KeyPat of
               '_' -> [E || {_, P} = E <- All, orrery_agent_v1:callback_module(P) =:= M];
               _ -> All
           end,
    Sorted = lists:sort(Mine),
    Small = Limits#{depth => 4, items => 10, binary => 60, budget => 200},
    #{count => length(Sorted),
      items => [#{key => orrery_agent_v1:trunc(K, Small),
                  info => orrery_agent_v1:pid_info(P, Small)}
                || {K, P} <- lists:sublist(Sorted, Max)]}.

%% A key pattern: '_' matches anything, tuples match item by item, the rest is equal.
matches('_', _) -> true;
matches(P, K) when is_tuple(P), is_tuple(K), tuple_size(P) =:= tuple_size(K) ->
    lists:all(fun({A, B}) -> matches(A, B) end,
              lists:zip(tuple_to_list(P), tuple_to_list(K)));
matches(P, K) -> P =:= K.

found(M, Pid, Registers, Limits) when is_pid(Pid) ->
    case Registers orelse orrery_agent_v1:callback_module(Pid) =:= M of
        true -> orrery_agent_v1:pid_info(Pid, Limits);
        false -> nil
    end;
found(_, _, _, _) -> nil.

%% ---- Processes behind a behaviour layer (for orrery_agent_v1's process counts) ----

%% Layer => [wanted modules that declare it as a behaviour].
layers(Mods) ->
    Pairs = [{L, M} || M <- Mods, L <- behaviours(M), L =/= M,
                       not lists:member(L, [gen_server, gen_statem, gen_event, supervisor,
                                            application, 'Elixir.GenServer',
                                            'Elixir.Supervisor', 'Elixir.Application'])],
    lists:foldl(fun({L, M}, Acc) -> Acc#{L => [M | maps:get(L, Acc, [])]} end, #{}, Pairs).

behaviours(M) ->
    case code:is_loaded(M) of
        false -> [];
        _ ->
            Attrs = try erlang:get_module_info(M, attributes) catch _:_ -> [] end,
            lists:append([V || {K, V} <- Attrs, K =:= behaviour orelse K =:= behavior,
                               is_list(V)])
    end.

%% The modules a process runs: its callback module and, for a behaviour layer, the user module,
%% found (cheapest first) as its registered name, in its process label (OTP 27), or in its
%% state (one sys:get_state per process ever, cached; at most a few per walk).
runs(P, Layers) ->
    case orrery_agent_v1:callback_module(P) of
        L when is_map_key(L, Layers) -> [L, layer_user(P, L, maps:get(L, Layers))];
        M -> [M]
    end.

layer_user(P, L, Users) ->
    Named = case erlang:process_info(P, [registered_name, dictionary]) of
                [{registered_name, N}, {dictionary, D}] ->
                    Label = proplists:get_value('$process_label', D),
                    first_of([N, Label], Users);
                _ -> undefined
            end,
    case Named of
        undefined -> cached_user(P, L);
        U -> U
    end.

first_of(Terms, Users) ->
    case [U || T <- Terms, U <- Users, mentions(T, U, 3)] of
        [U | _] -> U;
        [] -> undefined
    end.

mentions(U, U, _) -> true;
mentions(_, _, 0) -> false;
mentions(T, U, D) when is_tuple(T) -> mentions(tuple_to_list(T), U, D);
mentions(T, U, D) when is_map(T) -> mentions(maps:values(T), U, D);
mentions([H | Tl], U, D) -> mentions(H, U, D - 1) orelse mentions(Tl, U, D);
mentions(_, _, _) -> false.

cached_user(P, L) ->
    case try ets:lookup(orrery_names_v1_layers, P) catch _:_ -> [] end of
        [{P, U}] -> U;
        _ ->
            case get(orrery_layer_budget) of
                N when is_integer(N), N > 0 ->
                    put(orrery_layer_budget, N - 1),
                    U = state_user(P, L),
                    U =/= retry andalso cache(P, U),
                    U;
                _ -> undefined
            end
    end.

%% The first atom in the state (shallow) that is a loaded module declaring the layer.
state_user(P, L) ->
    try sys:get_state(P, 100) of
        S -> case user_in(S, L, 3) of
                 undefined -> none;
                 U -> U
             end
    catch _:_ -> retry
    end.

user_in(A, L, _) when is_atom(A), A =/= L ->
    case lists:member(L, behaviours(A)) of
        true -> A;
        false -> undefined
    end;
user_in(_, _, 0) -> undefined;
user_in(T, L, D) when is_tuple(T) -> user_in(tuple_to_list(T), L, D);
user_in(T, L, D) when is_map(T) -> user_in(maps:values(T), L, D);
user_in([H | Tl], L, D) ->
    case user_in(H, L, D - 1) of
        undefined -> user_in(Tl, L, D);
        U -> U
    end;
user_in(_, _, _) -> undefined.

%% The cache lives in a table owned by a small process of this module: removing the agent
%% (code:purge) ends it, and the table with it.
cache(P, U) ->
    case ets:info(orrery_names_v1_layers, id) of
        undefined ->
            Self = self(),
            Owner = spawn(fun() ->
                                  try ets:new(orrery_names_v1_layers, [named_table, public, set])
                                  catch _:_ -> ok end,
                                  Self ! {orrery_names_v1_layers, ready},
                                  receive stop -> ok end
                          end),
            receive {orrery_names_v1_layers, ready} -> ok after 1000 -> exit(Owner, kill) end;
        _ -> ok
    end,
    try ets:insert(orrery_names_v1_layers, {P, U}) catch _:_ -> ok end,
    ok.

forget_dead() ->
    case ets:info(orrery_names_v1_layers, id) of
        undefined -> ok;
        _ -> [ets:delete(orrery_names_v1_layers, P) || {P, _} <- ets:tab2list(orrery_names_v1_layers),
                                               not is_process_alive(P)]
    end.

