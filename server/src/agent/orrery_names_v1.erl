%% Orrery's lookups of processes by the names written in the code, loaded with the agent
%% and removed with it: {global, Name}, {via, Mod, Name} (GenServer.whereis/1 semantics),
%% for a Registry whose key is computed every process of the registry that runs the
%% module (or, for the registry's own module, every key), and, for names the code does
%% not tell, the module's processes found on the node with the names they have there
%% (registered name, Registry keys, global names). Also: the user module behind a
%% behaviour layer (a process whose callback module is GenStage runs the module that does
%% `use GenStage`), for process counts. Everything here only reads.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_names_v1).
-export([lookup/2, find/5, registries/0, name_of/3, layers/1, runs/2, forget_dead/0]).


%% Named: [{Module, [Spec]}] -> #{Module => [Result]}, results in the order of the specs.
%% Spec: {global, Name, Registers} | {via, Mod, Name, Registers} |
%%       {registry_any, Reg, Max, KeyPattern, All} | {runtime, Max}.
%% Registers: the module starts the process under this name, so show it whatever runs it;
%% otherwise show it only when its callback module is Module.
lookup(Named, Limits) ->
    %% One walk over every process for all the run-time lookups.
    Runtime = [M || {M, Specs} <- Named, lists:keymember(runtime, 1, Specs)],
    Runtime =/= [] andalso put(orrery_names_v1_procs, procs_of(Runtime)),
    try
        maps:from_list([{M, [safe(fun() -> one(M, S, Limits) end) || S <- Specs]}
                        || {M, Specs} <- Named])
    after
        erase(orrery_names_v1_procs)
    end.

%% Module => [Pid] of the processes running each of Mods (callback module).
procs_of(Mods) ->
    Want = maps:from_list([{M, []} || M <- Mods]),
    lists:foldl(fun(P, Acc) ->
                        M = orrery_agent_v1:callback_module(P),
                        case Acc of
                            #{M := Ps} -> Acc#{M := [P | Ps]};
                            _ -> Acc
                        end
                end, Want, erlang:processes()).

safe(F) ->
    try F() catch C:R -> {error, {C, R}} end.

one(M, {global, Name, Registers}, Limits) ->
    found(M, global:whereis_name(Name), Registers, Limits);
one(M, {via, Mod, Name, Registers}, Limits) ->
    found(M, Mod:whereis_name(Name), Registers, Limits);
one(M, {registry_any, Reg, Max}, Limits) ->
    one(M, {registry_any, Reg, Max, '_', false}, Limits);
one(M, {registry_any, Reg, Max, KeyPat}, Limits) ->
    one(M, {registry_any, Reg, Max, KeyPat, false}, Limits);
one(M, {registry_any, _, Max, _, _} = Spec, Limits) ->
    summary(entries(M, Spec), Max, Limits);
one(M, {runtime, Max} = Spec, Limits) ->
    summary(entries(M, Spec), Max, Limits).

%% [{Shown, Name, Pid}] for one spec: Shown is what a hover lists (the Registry key, or
%% the whole name found on the node), Name the name the process has.
entries(M, {registry_any, Reg, _, KeyPat, All}) ->
    Spec = [{{'$1', '$2', '_'}, [], [{{'$1', '$2'}}]}],
    Keys = [{K, P} || {K, P} <- 'Elixir.Registry':select(Reg, Spec), is_pid(P),
                      matches(KeyPat, K)],
    %% A key with literal parts names its processes whatever module they run (a
    %% supervisor started with a child list runs Supervisor.Default); a wholly computed
    %% key names the registry's processes that run the module, unless the module is the
    %% registry's own (its via_tuple/1 helper): then every key.
    Mine = case KeyPat =:= '_' andalso not All of
               true -> [E || {_, P} = E <- Keys, orrery_agent_v1:callback_module(P) =:= M];
               false -> Keys
           end,
    [{K, {via, 'Elixir.Registry', {Reg, K}}, P} || {K, P} <- Mine];
entries(M, {runtime, _}) ->
    Procs = case get(orrery_names_v1_procs) of
                #{M := Ps} -> lists:reverse(Ps);
                _ -> maps:get(M, procs_of([M]))
            end,
    {Named, Rest} = lists:split(min(length(Procs), named_max()), Procs),
    Regs = registries(),
    Globals = globals(),
    [case name_of(P, Regs, Globals) of
         nil -> {nil, P, P};
         N -> {N, N, P}
     end || P <- Named] ++ [{nil, P, P} || P <- Rest];
entries(M, {global, Name, Registers}) ->
    whereis_entry(M, {global, Name}, global:whereis_name(Name), Registers);
entries(M, {via, Mod, Name, Registers}) ->
    whereis_entry(M, {via, Mod, Name}, Mod:whereis_name(Name), Registers);
entries(_, _) -> [].

%% Processes whose names are looked up at run time: at most this many get names.
named_max() -> 1000.

whereis_entry(M, Name, Pid, Registers) when is_pid(Pid) ->
    case Registers orelse orrery_agent_v1:callback_module(Pid) =:= M of
        true -> [{Name, Name, Pid}];
        false -> []
    end;
whereis_entry(_, _, _, _) -> [].

%% Count, and the first Max by what is shown (processes without a name last).
summary(Entries, Max, Limits) ->
    Sorted = lists:sort(fun({A, _, _}, {B, _, _}) -> order(A) =< order(B) end, Entries),
    Small = Limits#{depth => 4, items => 10, binary => 60, budget => 200},
    #{count => length(Sorted),
      items => [item(S, P, Small) || {S, _, P} <- lists:sublist(Sorted, Max)]}.

%% Room for a whole name: {via, Registry, {Reg, {tag, "key"}}} is five levels deep.
key_limits(Small) -> Small#{depth => 7, budget => 300}.

order(nil) -> {1, nil};
order(K) -> {0, K}.

item(Shown, P, Small) ->
    #{key => orrery_agent_v1:trunc(Shown, key_limits(Small)),
      runs => orrery_agent_v1:callback_module(P),
      info => orrery_agent_v1:pid_info(P, Small)}.

%% The processes of module M that a target names: Specs as for lookup/2 (a runtime
%% lookup is always added), Key any or {key, K}: K is the registry key, the global or via
%% name, the registered name, or one element of a tuple key ({Todo.Server, "bob"} for
%% "bob"). -> #{count, items => [#{key, name, info}]}, by name, at most Max.
find(M, Specs, Key, Max, Limits) ->
    All = lists:append([safe_list(fun() -> entries(M, norm(S)) end) || S <- Specs ++ [{runtime, Max}]]),
    Unique = unique_pids(All, #{}, []),
    Wanted = [E || {_, Name, _} = E <- Unique, key_matches(Key, Name)],
    Sorted = lists:sort(fun({A, _, _}, {B, _, _}) -> order(A) =< order(B) end, Wanted),
    #{count => length(Sorted),
      items => [#{key => orrery_agent_v1:trunc(S, Limits),
                  name => orrery_agent_v1:trunc(N, Limits),
                  info => orrery_agent_v1:pid_info(P, Limits)}
                || {S, N, P} <- lists:sublist(Sorted, Max)]}.

norm({registry_any, Reg, Max}) -> {registry_any, Reg, Max, '_', false};
norm({registry_any, Reg, Max, Pat}) -> {registry_any, Reg, Max, Pat, false};
norm(S) -> S.

safe_list(F) ->
    try F() catch _:_ -> [] end.

%% First entry per pid, but a named entry wins over an unnamed one.
unique_pids([], _, Acc) -> lists:reverse(Acc);
unique_pids([{S, _, P} = E | T], Seen, Acc) ->
    case maps:find(P, Seen) of
        error -> unique_pids(T, Seen#{P => S}, [E | Acc]);
        {ok, nil} when S =/= nil ->
            unique_pids(T, Seen#{P => S}, [E | lists:keydelete(P, 3, Acc)]);
        {ok, _} -> unique_pids(T, Seen, Acc)
    end.

key_matches(any, _) -> true;
key_matches({key, K}, {via, 'Elixir.Registry', {_, K2}}) -> part(K, K2);
key_matches({key, K}, {via, _, N}) -> part(K, N);
key_matches({key, K}, {global, N}) -> part(K, N);
key_matches({key, K}, N) -> K =:= N.

part(K, K) -> true;
part(K, T) when is_tuple(T) -> lists:member(K, tuple_to_list(T));
part(_, _) -> false.

%% The registries of the node: registered supervisors of Registry.
registries() ->
    [N || N <- erlang:registered(), is_registry(N)].

is_registry(N) ->
    case whereis(N) of
        P when is_pid(P) ->
            lists:member(orrery_agent_v1:callback_module(P),
                         ['Elixir.Registry', 'Elixir.Registry.Supervisor']);
        _ -> false
    end.

globals() ->
    try [{global:whereis_name(N), N} || N <- lists:sublist(global:registered_names(), 10000)]
    catch _:_ -> []
    end.

%% The name P has on the node: a Registry key ({via, Registry, {Reg, Key}}), a global
%% name ({global, Name}), its registered name, or nil.
name_of(P, Regs, Globals) ->
    case reg_key(P, Regs) of
        nil ->
            case lists:keyfind(P, 1, Globals) of
                {_, N} -> {global, N};
                false ->
                    case erlang:process_info(P, registered_name) of
                        {registered_name, R} when is_atom(R) -> R;
                        _ -> nil
                    end
            end;
        Found -> Found
    end.

reg_key(_, []) -> nil;
reg_key(P, [R | Rs]) ->
    case catch 'Elixir.Registry':keys(R, P) of
        [K | _] -> {via, 'Elixir.Registry', {R, K}};
        _ -> reg_key(P, Rs)
    end.

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

