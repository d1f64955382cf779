%% Orrery's lookups of processes by the names written in the code, loaded with the agent
%% and removed with it: {global, Name}, {via, Mod, Name} (GenServer.whereis/1 semantics)
%% and, for a Registry whose key is computed, every process of the registry that runs
%% the module. Keep this file ASCII only, no macros, no -include.
-module(orrery_names_v1).
-export([lookup/2]).

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
